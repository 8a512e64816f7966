"""Containers.Logs and LogEntry as proto/vessel/v1/containers.proto
promises them: real vesseld, real VMs, in a network namespace of its own."""
import threading
import time

import grpc
import pytest

from contract import IMAGE
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2

OUT, ERR = types_pb2.STDIO_STREAM_STDOUT, types_pb2.STDIO_STREAM_STDERR


def logs(c, cid, timeout=60, **kw):
    req = cp.ContainersLogsRequest(container_id=cid, **kw)
    return [e for r in c.containers.stub.Logs(req, timeout=timeout) for e in r.entries]


def ran(c, script):
    ct = c.containers.create(IMAGE, ["sh", "-c", script])
    ct.start()
    assert ct.wait(timeout=120).code == 0
    return ct


def test_entries_are_lines_long_ones_split_at_16kib_and_partial(c):
    """'One line including its trailing newline (lines longer than 16 KiB
    are split; see partial)'; partial: 'split long line, or output without
    trailing newline at exit'."""
    # printf in pieces: one line written by three writes; a 40,000-byte
    # line; a last line without newline.
    ct = ran(c, "printf 'a'; printf 'b'; printf 'c\\n'; "
                "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'tail'")
    try:
        got = logs(c, ct.id)
        data = [e.data for e in got]
        assert data[0] == b"abc\n" and not got[0].partial
        assert [len(d) for d in data[1:4]] == [16384, 16384, 40001 - 2 * 16384]
        assert [e.partial for e in got[1:4]] == [True, True, False]
        assert b"".join(data[1:4]) == b"x" * 40000 + b"\n"
        assert data[4] == b"tail" and got[4].partial
        assert len(got) == 5 and all(len(d) <= 16384 for d in data)
    finally:
        ct.delete()


def test_tail_since_and_stream_selection(c):
    """tail: 'Only the last N stored entries'; since: 'at or after this
    time'; include_*: 'If both include_* are false, both are included'."""
    ct = ran(c, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    try:
        both = logs(c, ct.id)
        assert len(both) == 10 and {e.stream for e in both} == {OUT, ERR}
        assert [e.data for e in logs(c, ct.id, tail=3)] == [e.data for e in both[-3:]]
        outs = logs(c, ct.id, include_stdout=True)
        assert [e.data for e in outs] == [f"out{i}\n".encode() for i in range(1, 6)]
        errs = logs(c, ct.id, include_stderr=True)
        assert [e.data for e in errs] == [f"err{i}\n".encode() for i in range(1, 6)]
        mid = both[6].time
        later = logs(c, ct.id, since=mid)
        assert later and all(e.time.ToNanoseconds() >= mid.ToNanoseconds() for e in later)
        assert len(later) < 10
    finally:
        ct.delete()


def test_follow_streams_new_output_until_the_container_stops(c):
    """'with follow it then streams new output until the container stops'."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "echo first; read x; echo second"])
    proc = ct.attach(stdin=True, logs=False)
    ct.start()
    try:
        seen = []
        done = threading.Event()

        def follow():
            for r in c.containers.stub.Logs(cp.ContainersLogsRequest(
                    container_id=ct.id, follow=True), timeout=120):
                seen.extend(e.data for e in r.entries)
            done.set()
        threading.Thread(target=follow, daemon=True).start()
        deadline = time.monotonic() + 60
        while b"first\n" not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen == [b"first\n"] and not done.is_set()
        proc.write(b"go\n")
        assert done.wait(60), seen
        assert seen == [b"first\n", b"second\n"]
    finally:
        ct.delete(force=True)


def test_exec_output_is_not_logged(c):
    """'exec'd processes are not logged'."""
    ct = c.containers.create(IMAGE, ["sh", "-c", "echo init; sleep 600"])
    ct.start()
    try:
        deadline = time.monotonic() + 60
        while not logs(c, ct.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        ct.exec(["echo", "from-exec"]).wait(timeout=60)
        assert [e.data for e in logs(c, ct.id)] == [b"init\n"]
    finally:
        ct.delete(force=True)


def test_unknown_container_is_not_found(c):
    with pytest.raises(grpc.RpcError) as e:
        logs(c, "no-such-container")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_until_and_tail_of_what_the_filters_let_through(c):
    """until: 'Only entries at or before this time'; tail: the last N of
    those since, until and the include_* flags let through."""
    ct = ran(c, "for i in 1 2 3 4 5 6; do echo l$i; done")
    try:
        every = logs(c, ct.id)
        data = [e.data for e in every]
        cut = every[3].time
        assert [e.data for e in logs(c, ct.id, until=cut)] == data[:4]
        assert [e.data for e in logs(c, ct.id, until=cut, tail=2)] == data[2:4]
        assert [e.data for e in logs(c, ct.id, since=every[1].time, until=cut)] == data[1:4]
        assert logs(c, ct.id, since=every[4].time, until=cut) == []
    finally:
        ct.delete()


def test_log_config_shows_the_rotation_in_effect(c):
    """Container.log: 'as in effect: the Create request's, vesseld's
    defaults filled in at Create'; LogConfig: 'Negative: INVALID_ARGUMENT',
    max_files 'above 100: INVALID_ARGUMENT'."""
    ct = c.containers.create(IMAGE, ["true"], log_max_size=8192)
    try:
        got = c.containers.inspect(ct.id).log
        assert got.max_size_bytes == 8192 and got.max_files == 3  # vesseld's default
    finally:
        ct.delete(force=True)
    for bad in (cp.LogConfig(max_size_bytes=-1), cp.LogConfig(max_files=101)):
        with pytest.raises(grpc.RpcError) as e:
            c.containers.stub.Create(cp.ContainersCreateRequest(image=IMAGE, log=bad), timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
