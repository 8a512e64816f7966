"""Containers.Signal, Wait, Resize, CloseStdin, Attach, List, Inspect and
Stats as proto/vessel/v1/containers.proto promises them, one test per
documented behaviour: real vesseld, real VMs, in a network namespace of its
own."""
import threading
import time

import grpc
import pytest

from contract import IMAGE, code
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2

S = grpc.StatusCode


@pytest.fixture(scope="module")
def box(c):
    """A running container for the tests that need one."""
    ct = c.containers.create(IMAGE, ["sleep", "600"], labels={"suite": "processes"})
    ct.start()
    yield ct
    ct.delete(force=True)


def stub(c):
    return c.containers.stub


# ---- Signal ----

def test_signal_reaches_init_and_execs(c):
    """'Sends a signal to the init or an exec'd process'."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "trap 'echo got-usr1; exit 3' USR1; "
                                     "while :; do sleep 0.2; done"])
    try:
        ct.start()
        time.sleep(1)  # the trap is set
        ex = ct.exec(["sh", "-c", "trap 'exit 4' USR2; while :; do sleep 0.2; done"])
        time.sleep(1)
        stub(c).Signal(cp.ContainersSignalRequest(container_id=ct.id, exec_id=ex.exec_id,
                                                  signal=12), timeout=30)
        assert ex.wait(timeout=60).code == 4
        stub(c).Signal(cp.ContainersSignalRequest(container_id=ct.id, signal=10), timeout=30)
        assert ct.wait(timeout=60).code == 3
    finally:
        ct.delete(force=True)


def test_signal_all_reaches_every_process(c):
    """'all: Signal every process in the container': init and an exec both
    get it (each traps it its own way)."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "trap 'echo init-got-it' USR1; "
                                     "while :; do sleep 0.2; done"])
    try:
        ct.start()
        ex = ct.exec(["sh", "-c", "trap 'exit 4' USR1; while :; do sleep 0.2; done"])
        time.sleep(1.5)  # both traps are set
        s = stub(c)
        s.Signal(cp.ContainersSignalRequest(container_id=ct.id, signal=10, all=True), timeout=30)
        assert ex.wait(timeout=60).code == 4
        deadline = time.monotonic() + 30
        while b"init-got-it" not in b"".join(e.data for e in ct.logs()) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"init-got-it" in b"".join(e.data for e in ct.logs())
        assert ct.reload().state == cp.CONTAINER_STATE_RUNNING
    finally:
        ct.delete(force=True)


def test_signal_errors(c, box):
    """'FAILED_PRECONDITION (process not running), INVALID_ARGUMENT (signal
    out of range; all with an exec_id)'; NOT_FOUND for unknown IDs."""
    for sig in [0, 65, -1]:
        assert code(lambda: stub(c).Signal(cp.ContainersSignalRequest(
            container_id=box.id, signal=sig), timeout=30)) == S.INVALID_ARGUMENT
    ex = box.exec(["true"])
    ex.wait(timeout=60)
    assert code(lambda: stub(c).Signal(cp.ContainersSignalRequest(
        container_id=box.id, exec_id=ex.exec_id, signal=15, all=True), timeout=30)) == \
        S.INVALID_ARGUMENT
    assert code(lambda: stub(c).Signal(cp.ContainersSignalRequest(
        container_id=box.id, exec_id=ex.exec_id, signal=15), timeout=30)) == S.FAILED_PRECONDITION
    assert code(lambda: stub(c).Signal(cp.ContainersSignalRequest(
        container_id=box.id, exec_id="nope", signal=15), timeout=30)) == S.NOT_FOUND
    assert code(lambda: stub(c).Signal(cp.ContainersSignalRequest(
        container_id="nope", signal=15), timeout=30)) == S.NOT_FOUND


# ---- Wait ----

def test_wait_on_a_created_container_waits_for_start_and_exit(c):
    """'Waiting on a CREATED container waits for it to be started and to
    exit'; 'returns at once if it already has'."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "exit 6"])
    try:
        got = {}
        t = threading.Thread(target=lambda: got.update(s=stub(c).Wait(
            cp.ContainersWaitRequest(container_id=ct.id), timeout=120).exit_status))
        t.start()
        time.sleep(1.5)
        assert t.is_alive()  # not started yet: still waiting
        ct.start()
        t.join(120)
        assert got["s"].code == 6
        t0 = time.monotonic()
        again = stub(c).Wait(cp.ContainersWaitRequest(container_id=ct.id), timeout=30)
        assert again.exit_status.code == 6 and time.monotonic() - t0 < 5
    finally:
        ct.delete(force=True)


def test_wait_is_bounded_by_the_deadline_only(c, box):
    """'Bounded only by the call's deadline. Errors: NOT_FOUND,
    DEADLINE_EXCEEDED / CANCELLED'."""
    assert code(lambda: stub(c).Wait(cp.ContainersWaitRequest(container_id=box.id),
                                     timeout=2)) == S.DEADLINE_EXCEEDED
    assert code(lambda: stub(c).Wait(cp.ContainersWaitRequest(container_id="nope"),
                                     timeout=10)) == S.NOT_FOUND


# ---- Resize ----

def test_resize_a_terminal(c):
    """Resize changes the size a process's terminal reports."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "sleep 2; stty size"], tty=True)
    try:
        ct.start()
        stub(c).Resize(cp.ContainersResizeRequest(
            container_id=ct.id, size=types_pb2.ConsoleSize(rows=33, cols=101)), timeout=30)
        ct.wait(timeout=60)
        out = b"".join(e.data for e in ct.logs())
        assert b"33 101" in out, out
    finally:
        ct.delete(force=True)


def test_resize_errors(c, box):
    """'FAILED_PRECONDITION (no terminal, or not running)'; sizes > 0."""
    assert code(lambda: stub(c).Resize(cp.ContainersResizeRequest(
        container_id=box.id, size=types_pb2.ConsoleSize(rows=10, cols=10)), timeout=30)) == \
        S.FAILED_PRECONDITION
    assert code(lambda: stub(c).Resize(cp.ContainersResizeRequest(
        container_id=box.id, size=types_pb2.ConsoleSize(rows=0, cols=10)), timeout=30)) in \
        (S.INVALID_ARGUMENT, S.FAILED_PRECONDITION)


# ---- CloseStdin ----

def test_close_stdin_ends_a_reader_and_is_idempotent(c):
    """'Closes stdin of the init or an exec'd process. Idempotent.'"""
    ct = c.containers.create(IMAGE, ["sh", "-c", "cat; echo eof-seen"])
    try:
        proc = ct.attach(stdin=True, logs=False)
        ct.start()
        proc.write(b"line\n")
        time.sleep(1)
        for _ in range(2):
            stub(c).CloseStdin(cp.ContainersCloseStdinRequest(container_id=ct.id), timeout=30)
        assert ct.wait(timeout=60).code == 0
        out = b"".join(e.data for e in ct.logs())
        assert out == b"line\neof-seen\n", out
        assert code(lambda: stub(c).CloseStdin(cp.ContainersCloseStdinRequest(
            container_id=ct.id), timeout=30)) == S.FAILED_PRECONDITION  # not running
    finally:
        ct.delete(force=True)


# ---- Attach ----

def test_attach_first_message_must_be_open(c, box):
    """'INVALID_ARGUMENT (first message not `open` ...)'."""
    reqs = iter([cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(data=b"x"))])
    assert code(lambda: list(stub(c).Attach(reqs, timeout=30))) == S.INVALID_ARGUMENT


def test_attach_to_an_exited_process_replays_and_exits_at_once(c):
    """'attaching to a process that already exited sends the replay (if
    logs) and the exit at once'; several clients all receive the output."""
    ct = c.containers.create(IMAGE, ["echo", "done"])
    try:
        ct.start()
        ct.wait(timeout=60)
        for _ in range(2):
            msgs = list(stub(c).Attach(iter([cp.ContainersAttachRequest(
                open=cp.ContainersAttachOpen(container_id=ct.id, logs=True))]), timeout=30))
            assert b"".join(m.frame.data for m in msgs if m.HasField("frame")) == b"done\n"
            assert msgs[-1].HasField("exit") and msgs[-1].exit.code == 0
    finally:
        ct.delete(force=True)


# ---- List / Inspect / Stats ----

def test_list_filters_and_order(c, box):
    """'Include containers in every state; default: only RUNNING ones';
    filters by label, state, id prefix; 'newest first'; unknown key or bad
    state INVALID_ARGUMENT."""
    stopped = c.containers.create(IMAGE, ["true"], labels={"suite": "processes"})
    try:
        running = [x.id for x in c.containers.list()]
        assert box.id in running and stopped.id not in running
        mine = [x.id for x in c.containers.list(all=True, filters={"label": "suite=processes"})]
        assert mine[:2] == [stopped.id, box.id]  # newest first
        created = c.containers.list(all=True, filters={"state": "created"})
        assert [x.id for x in created] == [stopped.id]
        assert [x.id for x in c.containers.list(filters={"id": box.id[:10]})] == [box.id]
        for bad in [["bogus=1"], ["state=bogus"]]:
            assert code(lambda: stub(c).List(cp.ContainersListRequest(filters=bad, all=True),
                                             timeout=30)) == S.INVALID_ARGUMENT
    finally:
        stopped.delete(force=True)


def test_inspect_and_stats(c, box):
    """Inspect: 'Errors: NOT_FOUND'; the VM while running; Stats samples a
    RUNNING container, FAILED_PRECONDITION otherwise."""
    got = c.containers.inspect(box.id)
    assert got.state == cp.CONTAINER_STATE_RUNNING and got.pid > 0 and got.vm.qemu_pid > 0
    assert got.labels["suite"] == "processes"
    assert code(lambda: stub(c).Inspect(cp.ContainersInspectRequest(container_id="nope"),
                                        timeout=30)) == S.NOT_FOUND
    st = c.containers.stats(box.id)
    assert st.memory.usage_bytes > 0 and st.pids.current >= 1
    created = c.containers.create(IMAGE, ["true"])
    try:
        assert code(lambda: stub(c).Stats(cp.ContainersStatsRequest(container_id=created.id),
                                          timeout=30)) == S.FAILED_PRECONDITION
    finally:
        created.delete(force=True)
