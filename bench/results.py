"""bench/results.json: one section per benchmark script, each with the run
it comes from (commit, date, machine), so every README figure traces to a
committed run."""
import datetime
import json
import os
import subprocess

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")


def machine() -> dict:
    """Cores, CPU model and accelerator (kvm only with hardware
    virtualisation and a usable /dev/kvm, as vessel decides; else tcg)."""
    info = open("/proc/cpuinfo").read()
    cpu = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
    flags = next((l for l in info.splitlines() if l.startswith("flags")), "").split()
    kvm = ("vmx" in flags or "svm" in flags) and os.access("/dev/kvm", os.R_OK | os.W_OK)
    return {"cores": os.cpu_count(), "cpu": cpu, "accel": "kvm" if kvm else "tcg"}


def record(section: str, data: dict) -> dict:
    """Stores data as results.json[section] with the run's commit, date and
    machine (a tree with uncommitted changes is marked "+dirty")."""
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True,
                                    cwd=os.path.dirname(PATH)).stdout.strip()
    run = {"commit": git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain") else ""),
           "date": datetime.date.today().isoformat(), "machine": machine()}
    try:
        with open(PATH) as f:
            all_ = json.load(f)
    except (OSError, ValueError):
        all_ = {}
    all_[section] = {"run": run, **data}
    with open(PATH, "w") as f:
        json.dump(all_, f, indent=2)
        f.write("\n")
    return run
