"""Containers.Exec as proto/vessel/v1/containers.proto promises it, each
sentence a test: real vesseld, real VMs, in a network namespace of its own."""
import time

import grpc
import pytest

from contract import IMAGE, code
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2


@pytest.fixture(scope="module")
def ct(c):
    box = c.containers.create(IMAGE, ["sleep", "600"])
    box.start()
    box.client = c
    yield box
    box.delete(force=True)


def exec_(ct, args, **kw):
    return ct.client.containers.Exec(cp.ContainersExecRequest(
        container_id=ct.id, process=types_pb2.ProcessSpec(args=args), **kw))


def attach(ct, exec_id, logs=True):
    """(stdout, exit status) of an Attach with logs."""
    out, status = b"", None
    for m in ct.client.containers.Attach(iter([cp.ContainersAttachRequest(
            open=cp.ContainersAttachOpen(container_id=ct.id, exec_id=exec_id, logs=logs))]),
            timeout=60):
        if m.HasField("frame"):
            out += m.frame.data
        else:
            status = m.exit
    return out, status


def wait(ct, exec_id):
    return ct.client.containers.Wait(cp.ContainersWaitRequest(
        container_id=ct.id, exec_id=exec_id), timeout=60).exit_status


def test_output_is_buffered_up_to_1mib_until_the_first_attach(ct):
    """'Its output is buffered by vesseld (up to 1 MiB) until the first
    Attach (replayed with logs=true)'."""
    small = exec_(ct, ["sh", "-c", "echo early; echo late"]).exec_id
    assert wait(ct, small).code == 0  # all output produced before any Attach
    out, status = attach(ct, small)
    assert out == b"early\nlate\n" and status.code == 0
    # Only until the first Attach: a second one gets no replay.
    assert attach(ct, small)[0] == b""
    big = exec_(ct, ["dd", "if=/dev/zero", "bs=64k", "count=48"]).exec_id  # 3 MiB
    assert wait(ct, big).code == 0
    out, _ = attach(ct, big)
    assert 0 < len(out) <= 1 << 20, len(out)


def test_a_seen_exec_is_forgotten_after_its_grace(ct):
    """'A finished exec is forgotten 5-6 s after its exit last reached a
    client (by Wait, or by an Attach that received all its output) ...,
    whether or not other calls come: then Wait, Attach and Signal on its
    exec_id answer NOT_FOUND'."""
    waited = exec_(ct, ["true"], exec_id="waited").exec_id
    attached = exec_(ct, ["true"], exec_id="attached").exec_id
    assert wait(ct, waited).code == 0
    assert attach(ct, attached)[1].code == 0
    assert wait(ct, waited).code == 0  # within the grace: still there (and seen again)
    time.sleep(7)  # no call into the container meanwhile
    for eid in (waited, attached):
        assert code(lambda: wait(ct, eid)) == grpc.StatusCode.NOT_FOUND
        assert code(lambda: attach(ct, eid)) == grpc.StatusCode.NOT_FOUND
        assert code(lambda: ct.client.containers.Signal(cp.ContainersSignalRequest(
            container_id=ct.id, exec_id=eid, signal=15))) == grpc.StatusCode.NOT_FOUND
    # The name is free again.
    assert exec_(ct, ["true"], exec_id="waited").exec_id == "waited"


def test_an_unseen_exec_is_kept(ct):
    """'... or 10 minutes after it exited if no client asked': an exec nobody
    waited for or attached to is still there after the grace."""
    eid = exec_(ct, ["sh", "-c", "exit 3"], exec_id="unseen").exec_id
    time.sleep(7)
    exec_(ct, ["true"])  # nor by other execs
    assert wait(ct, eid).code == 3


def test_exec_ids_lists_the_running_execs(ct):
    """Container.exec_ids: 'IDs of the exec'd processes still running'."""
    exec_(ct, ["sleep", "30"], exec_id="running")
    exec_(ct, ["true"], exec_id="done")
    assert wait(ct, "done").code == 0
    ids = list(ct.client.containers.inspect(ct.id).exec_ids)
    assert "running" in ids and "done" not in ids
    ct.client.containers.Signal(cp.ContainersSignalRequest(
        container_id=ct.id, exec_id="running", signal=9))
    assert wait(ct, "running").signal == 9
    assert "running" not in ct.client.containers.inspect(ct.id).exec_ids


def test_exec_errors(ct):
    """'Errors: FAILED_PRECONDITION (not RUNNING), ALREADY_EXISTS (exec_id),
    INVALID_ARGUMENT (empty args)'."""
    exec_(ct, ["sleep", "30"], exec_id="twice")
    assert code(lambda: exec_(ct, ["true"], exec_id="twice")) == grpc.StatusCode.ALREADY_EXISTS
    assert code(lambda: exec_(ct, [])) == grpc.StatusCode.INVALID_ARGUMENT
    c = ct.client
    created = c.containers.create(IMAGE, ["true"])
    try:
        assert code(lambda: c.containers.Exec(cp.ContainersExecRequest(
            container_id=created.id, process=types_pb2.ProcessSpec(args=["true"])))) == \
            grpc.StatusCode.FAILED_PRECONDITION
    finally:
        created.delete(force=True)


def test_an_exec_gets_inits_defaults(c):
    """'Defaults from the container's init spec: env ... cwd ... user ...
    capabilities ...; no_new_privileges when init has it'."""
    req = cp.ContainersCreateRequest(image=IMAGE, process=types_pb2.ProcessSpec(
        args=["sleep", "600"], env=["FROM_INIT=1"], cwd="/tmp", no_new_privileges=True,
        user=types_pb2.User(uid=65534, gid=65534),
        capabilities=types_pb2.Capabilities(drop=["ALL"])))
    box = c.containers.get(c.containers.Create(req, timeout=180).container.id)
    try:
        box.start()
        out, err, status = box.exec(["sh", "-c", "echo $FROM_INIT; pwd; id -u; "
                                     "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"]).communicate()
        assert status.code == 0, err
        assert out.decode().split("\n")[:3] == ["1", "/tmp", "65534"], out
        assert b"CapEff:\t0000000000000000" in out and b"NoNewPrivs:\t1" in out, out
        # An exec may name its own user; no_new_privileges stays.
        ex = c.containers.Exec(cp.ContainersExecRequest(
            container_id=box.id, process=types_pb2.ProcessSpec(
                args=["sh", "-c", "id -u; grep NoNewPrivs /proc/self/status"],
                user=types_pb2.User(uid=0, gid=0))))
        got = b"".join(m.frame.data for m in c.containers.Attach(iter([
            cp.ContainersAttachRequest(open=cp.ContainersAttachOpen(
                container_id=box.id, exec_id=ex.exec_id, logs=True))]), timeout=60)
            if m.HasField("frame"))
        assert got == b"0\nNoNewPrivs:\t1\n", got
    finally:
        box.delete(force=True)
