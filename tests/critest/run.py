"""critest, cri-tools' CRI validation suite, against vesseld.

Everything stays inside a network namespace made here: there gcr.io,
registry.k8s.io and k8s.gcr.io name 127.0.0.1 (its own /etc/hosts), where
Debian's docker-registry serves, over TLS with a test CA that vesseld
trusts (<root>/certs.d/<host>/ca.crt), equivalents of critest's test
images built offline from Debian's busybox-static (what each spec checks of
its image is in cri-tools' pkg/validate and images/). So critest runs
unmodified, with the image names it was written for, and vesseld, its
VMs and critest's own HTTP checks never leave the namespace.

Prints critest's own summary and one line "critest: N passed, N failed,
N skipped"; exits non-zero when a spec failed that is not in CANNOT_PASS.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from oci_layout import Layout, tar_add  # noqa: E402
from vesseld import Vesseld  # noqa: E402

HOSTS = ["gcr.io", "registry.k8s.io", "k8s.gcr.io"]
TOOLS = "gcr.io/k8s-staging-cri-tools/"
E2E = "registry.k8s.io/e2e-test-images/"

# Specs that cannot pass on any machine without the internet, with why.
CANNOT_PASS = {
    "public image with digest should be pulled and removed":
        "its image is pinned by a digest (sha256:9700f9a2…) of content only gcr.io has",
}


PASSWD = (b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
          b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
GROUP = b"root:x:0:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n"


def layer(fill) -> bytes:
    """A tar layer; fill(add) adds its entries (oci_layout.tar_add's)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        fill(lambda *a, **kw: tar_add(t, *a, **kw))
    return buf.getvalue()


def base_layer() -> bytes:
    """What every test image starts from: busybox-static with every applet,
    users and groups as the upstream busybox image has them (www-data 33,
    users 100)."""
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()

    def fill(add):
        for d in ["bin", "etc", "root", "var", "var/www", "home", "proc", "sys", "dev", "run"]:
            add(d)
        add("tmp", mode=0o1777)
        add("bin/busybox", bb)
        for a in applets:  # hard links, as in the busybox image (a mask of one hides only it)
            if a != "busybox":
                add(f"bin/{a}", link="bin/busybox", hard=True)
        add("etc/passwd", PASSWD, mode=0o644)
        add("etc/group", GROUP, mode=0o644)
        add("var/www/index.html", b"<html>hello from vessel</html>\n", mode=0o644)
        # Debian's busybox has no pgrep or ipcs applet; specs run them
        add("bin/pgrep", b'#!/bin/sh\nfor d in /proc/[0-9]*; do\n'
            b'  [ "$(cat $d/comm 2>/dev/null)" = "$1" ] && echo ${d#/proc/}\ndone\n')
        add("bin/ipcs", b'#!/bin/sh\n# ipcs -m: the shared memory segments of this IPC namespace\n'
            b'echo "------ Shared Memory Segments --------"\necho "key shmid owner perms bytes nattch"\n'
            b'tail -n +2 /proc/sysvipc/shm | while read key id perms size cpid lpid natt uid rest; do\n'
            b'  echo "$key $id $uid $perms $size $natt"\ndone\n')
    return layer(fill)


def own_layer(files: dict[str, bytes]) -> bytes:
    """An image's own files over the base: etc/passwd and etc/group entries
    are added to the base's; usr/local/bin/ programs are setuid root."""
    def fill(add):
        for name, data in files.items():
            if name in ("etc/passwd", "etc/group"):
                add(name, (PASSWD if name == "etc/passwd" else GROUP) + data, mode=0o644)
            elif name.startswith("usr/local/bin/"):
                add("usr"), add("usr/local"), add("usr/local/bin")
                add(name, data, mode=0o4755)
            else:
                add(name, data, mode=0o644)
    return layer(fill)


def nnp_binary() -> bytes:
    """What the nonewprivs image runs, setuid root: prints its effective uid."""
    d = tempfile.mkdtemp()
    try:
        with open(f"{d}/nnp.c", "w") as f:
            f.write('#include <stdio.h>\n#include <unistd.h>\n'
                    'int main(void) { printf("Effective uid: %d\\n", (int)geteuid()); return 0; }\n')
        sh("gcc", "-static", "-O2", "-o", f"{d}/nnp", f"{d}/nnp.c")
        return open(f"{d}/nnp", "rb").read()
    finally:
        shutil.rmtree(d)


def images() -> dict[str, tuple[dict, dict[str, bytes]]]:
    """reference -> (config fields, files of its own layer)."""
    shell = {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}
    out = {
        E2E + "busybox:1.29-2": (shell, {}),
        # nginx's PID 1 is its "master process", which a spec looks for
        E2E + "nginx:1.14-2": ({**shell, "Cmd": ["sh", "-c", "trap 'kill $!; exit 0' TERM; "
                                                 "httpd -f -p 80 -h /var/www & wait; : nginx master process"],
                               "ExposedPorts": {"80/tcp": {}}}, {}),
        # prints its effective uid: 0 when setuid escalation is allowed
        E2E + "nonewprivs:1.3": ({**shell, "User": "1000", "Cmd": ["/usr/local/bin/nnp"]},
                                 {"usr/local/bin/nnp": nnp_binary()}),
        # Apache's image says "httpd" in its log as it starts; a spec looks for it
        E2E + "httpd:2.4.39-4": ({**shell, "Cmd": ["sh", "-c", "echo 'httpd: serving /var/www on port 80' >&2; "
                                                   "exec httpd -f -p 80 -h /var/www"],
                                 "ExposedPorts": {"80/tcp": {}}}, {}),
        "registry.k8s.io/pause:3.9": ({**shell, "Cmd": ["sleep", "2147483647"]}, {}),
        "k8s.gcr.io/pause:3.9": ({**shell, "Cmd": ["sleep", "2147483647"]}, {}),
        TOOLS + "test-image-predefined-group:latest": ({**shell, "User": "1000"}, {
            "etc/passwd": b"default-user:x:1000:1000::/home/default-user:/bin/sh\n",
            "etc/group": b"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"}),
    }
    for name, user in [("uid", "1002"), ("username", "www-data"), ("uid-group", "1003:1004"),
                       ("username-group", "www-data:1004")]:
        out[TOOLS + f"test-image-user-{name}:latest"] = ({**shell, "User": user}, {})
    for name in ["test-image-1", "test-image-2", "test-image-3", "test-image-latest"]:
        out[TOOLS + name + ":latest"] = (shell, {name: b""})
    for tag in ["1", "2", "3"]:
        out[TOOLS + f"test-image-tags:{tag}"] = (shell, {"same-image": b""})
    for tag in ["test", "all"]:
        out[TOOLS + f"test-image-tag:{tag}"] = (shell, {tag: b""})
    return out


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def make_certs(d: str):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=vessel critest CA",
       "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", capture_output=True)
    with open(f"{d}/san.ext", "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{h}" for h in HOSTS) + "\n")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gcr.io", "-keyout", f"{d}/server.key",
       "-out", f"{d}/server.csr", capture_output=True)
    sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
       "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san.ext", "-out", f"{d}/server.pem", capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--focus", default="", help="ginkgo focus regexp (default: every spec)")
    ap.add_argument("--websocket", action="store_true", help="exec/attach/port-forward over WebSocket")
    ap.add_argument("--critest", default=shutil.which("critest") or "critest")
    ap.add_argument("--log", help="critest's whole output to this file (else its last 20 kB are printed)")
    ap.add_argument("--keep", action="store_true",
                    help="set up, print how to reach it, and wait (for debugging) instead of running critest")
    args = ap.parse_args()
    kernel, initrd = os.environ.get("VESSEL_KERNEL", ""), os.environ.get("VESSEL_INITRD", "")
    assert kernel and initrd, "VESSEL_KERNEL and VESSEL_INITRD must be set"

    tmp = tempfile.mkdtemp(prefix="vsl-critest-", dir="/tmp")
    ns = "vslcri" + os.path.basename(tmp)[-6:].replace("_", "")
    os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
    with open(f"/etc/netns/{ns}/hosts", "w") as f:  # `ip netns exec` binds it over /etc/hosts
        f.write("127.0.0.1 localhost " + " ".join(HOSTS) + "\n")
    sh("ip", "netns", "add", ns)
    inns = ["ip", "netns", "exec", ns]
    reg = vd = None
    try:
        sh(*inns, "ip", "link", "set", "lo", "up")
        make_certs(tmp)
        with open(f"{tmp}/registry.yml", "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {tmp}/data\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: 127.0.0.1:443\n  tls:\n    certificate: {tmp}/server.pem\n"
                    f"    key: {tmp}/server.key\n")
        reg = subprocess.Popen([*inns, "docker-registry", "serve", f"{tmp}/registry.yml"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if subprocess.run([*inns, "sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/443"],
                              capture_output=True, executable="/bin/bash").returncode == 0:
                break
            time.sleep(0.1)
        t0 = time.time()
        os.makedirs(f"{tmp}/trust")  # skopeo reads every *.crt there as a CA (and *.key as a client's)
        shutil.copy(f"{tmp}/ca.crt", f"{tmp}/trust/ca.crt")
        lay = Layout(f"{tmp}/layout")
        base = base_layer()
        for i, (ref, (config, files)) in enumerate(images().items()):
            layers = [base, own_layer(files)]
            if ":" in ref and "/test-image-tag" in ref:
                # as upstream: an index over linux/amd64 and linux/arm64 (the
                # arm64 entry is never run here), so a pull picks the node's
                lay.multi([lay.image(layers, arch=a, config_extra=config) for a in ("amd64", "arm64")],
                          f"img{i}")
            else:
                lay.tag(lay.image(layers, config_extra=config), f"img{i}")
            sh(*inns, "skopeo", "copy", "-q", "--all", "--dest-cert-dir", f"{tmp}/trust",
               f"oci:{tmp}/layout:img{i}", f"docker://{ref}", stdout=subprocess.DEVNULL)
        print(f"critest: {len(images())} test images in the registry ({time.time() - t0:.0f} s)", flush=True)

        root = f"{tmp}/root"
        for h in HOSTS:
            os.makedirs(f"{root}/certs.d/{h}")
            shutil.copy(f"{tmp}/ca.crt", f"{root}/certs.d/{h}/ca.crt")
        sock = f"unix://{tmp}/cri.sock"
        vd = Vesseld("--kernel", kernel, "--initrd", initrd, "--cri-listen", sock, root=root, netns=ns)
        if args.keep:
            print(f"critest: namespace {ns}, CRI {sock}; crictl: ip netns exec {ns} crictl "
                  f"--runtime-endpoint {sock} --image-endpoint {sock} ...; ^C ends", flush=True)
            try:
                time.sleep(1 << 30)
            except KeyboardInterrupt:
                return 0
        cmd = [*inns, args.critest, "--runtime-endpoint", sock, "--image-endpoint", sock,
               "--ginkgo.no-color", "--ginkgo.junit-report", f"{tmp}/junit.xml"]
        if args.focus:
            cmd += ["--ginkgo.focus", args.focus]
        if args.websocket:
            cmd += ["--websocket-exec", "--websocket-attach", "--websocket-portforward"]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        if args.log:
            with open(args.log, "w") as f:
                f.write(out)
        else:
            print(out[-20000:])
        failed = re.findall(r"^\s*\[FAIL\] .*?\] (.*?)(?: \[Conformance\])?$", out, re.M)
        m = re.search(r"(\d+) Passed \| (\d+) Failed \| \d+ Pending \| (\d+) Skipped", out)
        if not m:
            print("critest: no summary (it did not run)")
            return 1
        print(f"critest: {m.group(1)} passed, {m.group(2)} failed, {m.group(3)} skipped")
        unexpected = [f for f in set(failed) if not any(k in f for k in CANNOT_PASS)]
        for f in sorted(set(failed)):
            why = next((w for k, w in CANNOT_PASS.items() if k in f), None)
            print(f"critest: FAILED {f}" + (f" (cannot pass here: {why})" if why else ""))
        return 1 if unexpected or int(m.group(2)) > len(failed) else 0
    finally:
        if vd:
            vd.cleanup()
        if reg:
            reg.terminate()
            reg.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
