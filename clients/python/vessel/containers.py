"""Containers: each one runs in its own VM.

Lifecycle (see proto/vessel/v1/containers.proto): ``create`` boots the VM
and returns a CREATED container; ``start`` runs init; when init exits the VM
shuts down (STOPPED); ``delete`` removes everything. Attach before starting
(or with ``logs=True``) to see all output.

Descriptions are the generated messages of ``vessel.v1.containers_pb2``
(``Container``, ``LogEntry``...) and ``vessel.v1.types_pb2`` (``ExitStatus``,
``Statistics``...). Handles (``Container``, ``Process``) and ``RunResult``
are defined here.
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import queue
import shlex
import threading
from typing import (TYPE_CHECKING, BinaryIO, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, Union)

import grpc
from google.protobuf import timestamp_pb2

from vessel._streams import Stream
from vessel.errors import NotFoundError, call, error_from_rpc
from vessel.images import Filters, PathOrFile, PlatformLike, _read_chunks, filters_list, \
    platform_message
from vessel.v1 import containers_pb2 as cp
from vessel.v1 import types_pb2

if TYPE_CHECKING:
    from vessel.client import Client

Command = Union[None, str, Sequence[str]]
EnvLike = Union[None, Mapping[str, str], Sequence[str]]
UserLike = Union[None, int, str, types_pb2.User]
TimeLike = Union[None, float, datetime.datetime, timestamp_pb2.Timestamp]

_STREAM_NAMES = {types_pb2.STDIO_STREAM_STDOUT: "stdout", types_pb2.STDIO_STREAM_STDERR: "stderr"}


class Output(NamedTuple):
    """A chunk of process output: ``stream`` is "stdout" or "stderr"."""
    stream: str
    data: bytes


@dataclasses.dataclass
class RunResult:
    """What ``containers.run`` returns."""
    exit_code: int
    stdout: bytes
    stderr: bytes
    container_id: str
    exit_status: types_pb2.ExitStatus = dataclasses.field(repr=False)


class ContainerError(Exception):
    """``run(..., check=True)``: the command exited with a non-zero code."""

    def __init__(self, result: RunResult):
        super().__init__(f"container {result.container_id}: exit code {result.exit_code}: "
                         f"{result.stderr[-500:].decode(errors='replace')}")
        self.result = result


# ---------------------------------------------------------------------------
# Request building
# ---------------------------------------------------------------------------

def _args(cmd: Command) -> List[str]:
    if cmd is None:
        return []
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return list(cmd)


def _env(env: EnvLike) -> List[str]:
    if not env:
        return []
    if isinstance(env, Mapping):
        return [f"{k}={v}" for k, v in env.items()]
    return list(env)


def _user(user: UserLike) -> Optional[types_pb2.User]:
    if user is None or isinstance(user, types_pb2.User):
        return user
    if isinstance(user, int):
        return types_pb2.User(uid=user)
    return types_pb2.User(name=user)


def process_spec(cmd: Command = None, env: EnvLike = None, workdir: str = "", user: UserLike = None,
                 tty: bool = False) -> Optional[types_pb2.ProcessSpec]:
    """A ProcessSpec, or None when nothing is set (= all from the image).
    cmd: argv list, or a string split like a shell would (shlex)."""
    args, envl, u = _args(cmd), _env(env), _user(user)
    if not (args or envl or workdir or u or tty):
        return None
    return types_pb2.ProcessSpec(args=args, env=envl, cwd=workdir, user=u, terminal=tty)


def _timestamp(t: TimeLike) -> Optional[timestamp_pb2.Timestamp]:
    if t is None or isinstance(t, timestamp_pb2.Timestamp):
        return t
    ts = timestamp_pb2.Timestamp()
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.astimezone()
        ts.FromDatetime(t.astimezone(datetime.timezone.utc).replace(tzinfo=None))
    else:
        ts.FromNanoseconds(int(t * 1e9))
    return ts


def _mounts(mounts, tmpfs) -> List[types_pb2.Mount]:
    out = []
    for m in mounts or []:
        if isinstance(m, types_pb2.Mount):
            out.append(m)
        elif isinstance(m, Mapping):
            out.append(types_pb2.Mount(**m))
        else:  # "host:container[:ro]"
            parts = m.split(":")
            if len(parts) not in (2, 3):
                raise ValueError(f"mount {m!r}: want HOST:CONTAINER[:ro]")
            out.append(types_pb2.Mount(type="bind", source=parts[0], destination=parts[1],
                                       options=parts[2].split(",") if len(parts) == 3 else []))
    for dest in tmpfs or []:
        out.append(types_pb2.Mount(type="tmpfs", destination=dest))
    return out


def _ports(ports) -> List[cp.PortMapping]:
    if not ports:
        return []
    if not isinstance(ports, Mapping):
        return list(ports)
    out = []
    for cport, host in ports.items():  # {80: 8080, "53/udp": ("127.0.0.1", 0)}
        proto = cp.PORT_PROTOCOL_TCP
        if isinstance(cport, str) and "/" in cport:
            cport, p = cport.split("/")
            proto = cp.PORT_PROTOCOL_UDP if p == "udp" else cp.PORT_PROTOCOL_TCP
        ip, hport = ("", host) if not isinstance(host, tuple) else host
        out.append(cp.PortMapping(host_ip=ip, host_port=int(hport or 0),
                                  container_port=int(cport), protocol=proto))
    return out


def _networks(networks) -> List[cp.NetworkAttachment]:
    return [n if isinstance(n, cp.NetworkAttachment) else cp.NetworkAttachment(network=n)
            for n in networks or []]


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

class _Reader(io.RawIOBase):
    def __init__(self, proc: "Process", name: str):
        self._proc, self._name = proc, name

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._proc._take(self._name, len(b))
        b[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self._proc._take(self._name, -1)


class Process:
    """A process of a container (its init, or an exec'd one) with its
    standard streams attached.

    Output can be consumed three ways (single consumer thread; do not mix
    them concurrently):

    * iterate: ``for out in proc: out.stream, out.data`` (arrival order);
    * file-like: ``proc.stdout.read()``, ``proc.stderr.readline()``
      (buffered readers: reading one stream keeps the other's data);
    * ``proc.communicate(input)`` / ``proc.wait()`` then read.

    ``write``/``close_stdin`` feed stdin (when attached with stdin=True).
    Leaving a ``with`` block detaches (the process keeps running).
    """

    def __init__(self, containers: "Containers", container_id: str, exec_id: str = "",
                 pid: int = 0, stdin: bool = False, logs: bool = True, attach: bool = True,
                 timeout: Optional[float] = None):
        self._containers = containers
        self.container_id = container_id
        self.exec_id = exec_id
        self.pid = pid
        self._stdin = stdin
        self._q: "queue.Queue[Optional[cp.ContainersAttachRequest]]" = queue.Queue()
        self._chunks: List[Output] = []
        self._exit: Optional[types_pb2.ExitStatus] = None
        self._ended = not attach
        self._detached = False
        self._lock = threading.RLock()
        self._call = None
        if attach:
            open_ = cp.ContainersAttachOpen(container_id=container_id, exec_id=exec_id,
                                            attach_stdin=stdin, attach_stdout=True,
                                            attach_stderr=True, logs=logs)
            self._call = containers.stub.Attach(self._requests(open_), timeout=timeout)
        self.stdout = io.BufferedReader(_Reader(self, "stdout"))
        self.stderr = io.BufferedReader(_Reader(self, "stderr"))

    def __repr__(self) -> str:
        return f"<vessel.Process {self.container_id}/{self.exec_id or 'init'}>"

    def _requests(self, open_: cp.ContainersAttachOpen) -> Iterator[cp.ContainersAttachRequest]:
        yield cp.ContainersAttachRequest(open=open_)
        while True:  # the request stream stays open: half-closing detaches
            item = self._q.get()
            if item is None:
                return
            yield item

    def _finish(self) -> None:
        self._ended = True
        self._q.put(None)

    def _pull(self) -> bool:
        """Receives one more message; False once the stream has ended."""
        if self._ended:
            return False
        try:
            msg = next(self._call)
        except StopIteration:
            self._finish()
            return False
        except grpc.RpcError as e:
            self._finish()
            if self._detached and e.code() == grpc.StatusCode.CANCELLED:
                return False
            raise error_from_rpc(e) from None
        kind = msg.WhichOneof("kind")
        if kind == "frame" and msg.frame.data:
            self._chunks.append(Output(_STREAM_NAMES.get(msg.frame.stream, "stdout"),
                                       msg.frame.data))
        elif kind == "exit":
            self._exit = msg.exit
        return True

    def __iter__(self) -> Iterator[Output]:
        while True:
            with self._lock:
                if not self._chunks and self._pull():
                    continue
                if not self._chunks:
                    return
                item = self._chunks.pop(0)
            yield item

    def _take(self, name: str, n: int) -> bytes:
        with self._lock:
            if n < 0:
                while self._pull():
                    pass
                data = b"".join(c.data for c in self._chunks if c.stream == name)
                self._chunks = [c for c in self._chunks if c.stream != name]
                return data
            while True:
                for i, c in enumerate(self._chunks):
                    if c.stream == name:
                        if len(c.data) <= n:
                            del self._chunks[i]
                            return c.data
                        self._chunks[i] = Output(name, c.data[n:])
                        return c.data[:n]
                if not self._pull():
                    return b""

    # -- stdin -------------------------------------------------------------

    def write(self, data: Union[bytes, str]) -> None:
        """Sends data to the process's stdin (attached with stdin=True)."""
        if not self._stdin:
            raise ValueError("process not attached with stdin=True")
        if isinstance(data, str):
            data = data.encode()
        for i in range(0, len(data), 32 << 10):
            self._q.put(cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
                stream=types_pb2.STDIO_STREAM_STDIN, data=data[i:i + (32 << 10)])))

    def close_stdin(self) -> None:
        """Closes the process's stdin (it reads EOF)."""
        if self._stdin and not self._ended:
            self._q.put(cp.ContainersAttachRequest(frame=types_pb2.StdioFrame(
                stream=types_pb2.STDIO_STREAM_STDIN, eof=True)))
        else:
            self._containers.close_stdin(self.container_id, self.exec_id)

    def resize(self, rows: int, cols: int) -> None:
        """Resizes the process's terminal (processes with tty=True)."""
        self._containers.resize(self.container_id, rows, cols, exec_id=self.exec_id)

    def signal(self, sig: int) -> None:
        """Sends a signal (number) to the process."""
        self._containers.signal(self.container_id, sig, exec_id=self.exec_id)

    def kill(self) -> None:
        """SIGKILLs the process."""
        self.signal(9)

    # -- exit --------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> types_pb2.ExitStatus:
        """Waits for the process to exit and returns its ExitStatus. Output
        still unread stays readable. timeout: seconds (DeadlineExceededError
        when it passes)."""
        if timeout is not None or self._call is None:
            status = self._containers.wait(self.container_id, self.exec_id, timeout=timeout)
            if self._call is None:
                self._exit = status
        with self._lock:
            while self._pull():
                pass
        if self._exit is None:  # detached: ask the server
            self._exit = self._containers.wait(self.container_id, self.exec_id, timeout=timeout)
        return self._exit

    @property
    def exit_status(self) -> Optional[types_pb2.ExitStatus]:
        """The ExitStatus once received, else None."""
        return self._exit

    @property
    def exit_code(self) -> Optional[int]:
        """The exit code once received (128+signal if killed), else None."""
        return None if self._exit is None else self._exit.code

    def communicate(self, input: Union[None, bytes, str] = None,
                    timeout: Optional[float] = None) -> Tuple[bytes, bytes, types_pb2.ExitStatus]:
        """Writes ``input`` (then closes stdin), waits for the exit and
        returns (stdout, stderr, ExitStatus) not yet read."""
        if input is not None:
            self.write(input)
            self.close_stdin()
        status = self.wait(timeout)
        return self._take("stdout", -1), self._take("stderr", -1), status

    def detach(self) -> None:
        """Stops receiving output; the process keeps running."""
        self._detached = True
        if not self._ended:
            self._q.put(None)
            if self._call is not None:
                self._call.cancel()
            self._ended = True

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()


# ---------------------------------------------------------------------------
# Container handle
# ---------------------------------------------------------------------------

class Container:
    """A handle on one container. ``info`` is its last known description
    (the generated ``containers_pb2.Container``; refresh with ``reload()``).

    As a context manager it deletes the container on exit (force: a running
    one is killed)::

        with client.containers.create("busybox", ["sleep", "60"]) as c:
            c.start()
            print(c.exec(["echo", "hi"]).communicate()[0])
    """

    def __init__(self, containers: "Containers", info: cp.Container):
        self._c = containers
        self.info = info

    def __repr__(self) -> str:
        return f"<vessel.Container {self.id} {self.state_name}>"

    @property
    def id(self) -> str:
        """The container ID (also its name)."""
        return self.info.id

    @property
    def state(self) -> int:
        """State as ContainerState number (cp.CONTAINER_STATE_RUNNING ...)."""
        return self.info.state

    @property
    def state_name(self) -> str:
        """State as a lower-case word: "created", "running", "stopped"..."""
        return cp.ContainerState.Name(self.info.state).replace("CONTAINER_STATE_", "").lower()

    def reload(self) -> cp.Container:
        """Refreshes and returns ``info``."""
        self.info = self._c.inspect(self.id)
        return self.info

    def start(self) -> "Container":
        """Starts init (a STOPPED container gets a fresh VM)."""
        self.info = self._c.start(self.id)
        return self

    def attach(self, stdin: bool = False, logs: bool = True) -> Process:
        """Attaches to init (see Containers.attach)."""
        return self._c.attach(self.id, stdin=stdin, logs=logs)

    def exec(self, cmd: Command, **kw) -> Process:
        """Runs another process in the running container (see Containers.exec)."""
        return self._c.exec(self.id, cmd, **kw)

    def wait(self, timeout: Optional[float] = None) -> types_pb2.ExitStatus:
        """Waits for init to exit."""
        return self._c.wait(self.id, timeout=timeout)

    def logs(self, **kw) -> Stream[cp.LogEntry]:
        """Init's output log (see Containers.logs)."""
        return self._c.logs(self.id, **kw)

    def signal(self, sig: int, all: bool = False) -> None:
        """Sends a signal to init (all=True: to every process)."""
        self._c.signal(self.id, sig, all=all)

    def kill(self) -> None:
        """SIGKILLs init."""
        self._c.signal(self.id, 9)

    def stop(self, grace: Optional[float] = None, signal: int = 0) -> types_pb2.ExitStatus:
        """Stops the container (see Containers.stop)."""
        return self._c.stop(self.id, grace=grace, signal=signal)

    def delete(self, force: bool = False) -> None:
        """Deletes the container (force: kill it if running)."""
        self._c.delete(self.id, force=force)

    def stats(self) -> types_pb2.Statistics:
        """One resource usage sample."""
        return self._c.stats(self.id)

    def copy_in(self, path: str, archive: Union[PathOrFile, bytes], **kw) -> int:
        """Extracts a tar archive into directory ``path`` (see Containers.copy_in)."""
        return self._c.copy_in(self.id, path, archive, **kw)

    def copy_out(self, path: str, dest: PathOrFile) -> types_pb2.FileInfo:
        """Writes ``path`` as a tar archive to ``dest`` (see Containers.copy_out)."""
        return self._c.copy_out(self.id, path, dest)

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._c.delete(self.id, force=True)
        except NotFoundError:
            pass


# ---------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------

def restart_policy(spec: str) -> Optional[cp.RestartPolicy]:
    """"on-failure:3" -> RestartPolicy(name="on-failure", max_retries=3)."""
    if not spec:
        return None
    name, _, n = spec.partition(":")
    return cp.RestartPolicy(name=name, max_retries=int(n) if n else 0)


class Containers:
    """``client.containers``: container operations. The raw gRPC methods of
    the Containers service stay reachable as ``client.containers.Create(request)``
    etc."""

    def __init__(self, client: "Client", stub):
        self._client = client
        self.stub = stub

    def __getattr__(self, name: str):  # raw stub methods (Create, Attach, ...)
        return getattr(self.stub, name)

    def _t(self, timeout: Optional[float]) -> Optional[float]:
        return self._client.timeout if timeout is None else timeout

    def create(self, image: str, cmd: Command = None, *, id: str = "", name: str = "",
               entrypoint: Union[None, str, Sequence[str]] = None, env: EnvLike = None,
               workdir: str = "", user: UserLike = None, tty: bool = False, hostname: str = "",
               labels: Optional[Mapping[str, str]] = None, mounts=None,
               tmpfs: Optional[Sequence[str]] = None, networks=None, ports=None,
               memory: int = 0, cpus: float = 0, pids_max: int = 0, auto_remove: bool = False,
               platform: PlatformLike = None, kernel: str = "",
               dns: Optional[types_pb2.Dns] = None,
               extra_hosts: Optional[Mapping[str, str]] = None,
               sysctls: Optional[Mapping[str, str]] = None, rootfs_free_bytes: int = 0,
               no_template: bool = False, restart: str = "", read_only: bool = False,
               pod: str = "", masked_paths: Optional[Sequence[str]] = None,
               readonly_paths: Optional[Sequence[str]] = None,
               log_max_size: int = 0, log_max_files: int = 0,
               timeout: Optional[float] = None) -> Container:
        """Creates a container from a local image and boots its VM; returns
        a Container handle (state CREATED; call ``start()``).

        cmd: argv (list, or a string split shell-style); empty = the image's
        CMD. entrypoint: replaces the image ENTRYPOINT ("" or [] = none).
        env: {"K": "v"} or ["K=v"], added to the image's. user: "name",
        "uid:gid" or a uid. mounts: ["/host:/ctr[:ro]", Mount(...)];
        tmpfs: ["/ctr/path"]. networks: ["default", ...] ("none" = loopback
        only). ports: {80: 8080, "53/udp": ("127.0.0.1", 0)} (0 = ephemeral)
        or [PortMapping(...)]. memory: bytes; cpus: 1.5 = one and a half CPUs.
        extra_hosts: {"name": "ip"}. id/name: the container ID (default
        generated). restart: "no", "on-failure[:N]", "always" or
        "unless-stopped". read_only: a read-only root filesystem. pod: create
        it in this running pod (see client.pods). masked_paths /
        readonly_paths: replace the default restricted paths (either given:
        both lists exactly as given). log_max_size (bytes) / log_max_files:
        the rotation of its output log (0 = vesseld's defaults).
        """
        if entrypoint is None:
            ep = None
        else:
            ep = cp.EntrypointOverride(args=_args(entrypoint) if entrypoint else [])
        res = None
        if memory or cpus or pids_max:
            res = types_pb2.Resources(memory_bytes=int(memory), milli_cpus=int(cpus * 1000),
                                      pids_max=pids_max)
        req = cp.ContainersCreateRequest(
            id=id or name, image=image, platform=platform_message(platform),
            process=process_spec(cmd, env, workdir, user, tty), entrypoint=ep, resources=res,
            mounts=_mounts(mounts, tmpfs), networks=_networks(networks), ports=_ports(ports),
            hostname=hostname, dns=dns,
            extra_hosts=[types_pb2.HostsEntry(ip=ip, hostnames=[h])
                         for h, ip in (extra_hosts or {}).items()],
            labels=labels or {}, auto_remove=auto_remove, kernel=kernel,
            no_template=no_template, sysctls=sysctls or {}, rootfs_free_bytes=rootfs_free_bytes,
            restart_policy=restart_policy(restart), read_only_rootfs=read_only, pod_id=pod,
            path_restrictions=(types_pb2.PathRestrictions(masked=masked_paths or [],
                                                          readonly=readonly_paths or [])
                               if masked_paths is not None or readonly_paths is not None else None),
            log=(cp.LogConfig(max_size_bytes=log_max_size, max_files=log_max_files)
                 if log_max_size or log_max_files else None))
        return Container(self, call(self.stub.Create, req, self._t(timeout)).container)

    def get(self, container_id: str) -> Container:
        """A handle on an existing container (NotFoundError if none)."""
        return Container(self, self.inspect(container_id))

    def start(self, container_id: str, timeout: Optional[float] = None) -> cp.Container:
        """Starts init; returns the container (RUNNING)."""
        req = cp.ContainersStartRequest(container_id=container_id)
        return call(self.stub.Start, req, self._t(timeout)).container

    def run(self, image: str, cmd: Command = None, *, input: Union[None, bytes, str] = None,
            remove: bool = True, check: bool = False, timeout: Optional[float] = None,
            **create_options) -> RunResult:
        """Runs a command in a new container and waits for it: create, attach,
        start, collect output, wait, and (remove=True) delete.

        input: written to the process's stdin, which is then closed.
        check: raise ContainerError on a non-zero exit code. timeout:
        seconds for the command to finish (the container is deleted either
        way when remove=True). Other keyword arguments are those of create().
        """
        ct = self.create(image, cmd, **create_options)
        proc = None
        try:
            proc = self.attach(ct.id, stdin=input is not None, logs=True, timeout=timeout)
            self.start(ct.id)
            out, err, status = proc.communicate(input)
        finally:
            if proc is not None:
                proc.detach()
            if remove:
                try:
                    self.delete(ct.id, force=True)
                except NotFoundError:
                    pass
        result = RunResult(status.code, out, err, ct.id, status)
        if check and status.code != 0:
            raise ContainerError(result)
        return result

    def attach(self, container_id: str, exec_id: str = "", stdin: bool = False,
               logs: bool = False, timeout: Optional[float] = None) -> Process:
        """Attaches to the init (or an exec'd) process: a Process whose
        output can be iterated or read. logs=True first replays earlier
        output. Attaching to a CREATED container waits for its start; write
        stdin only after start() (vesseld drops stdin sent earlier)."""
        return Process(self, container_id, exec_id, stdin=stdin, logs=logs, timeout=timeout)

    def exec(self, container_id: str, cmd: Command, *, env: EnvLike = None, workdir: str = "",
             user: UserLike = None, tty: bool = False, stdin: bool = False, exec_id: str = "",
             attach: bool = True, timeout: Optional[float] = None) -> Process:
        """Starts another process in a RUNNING container and attaches to it
        (all its output, from the start). attach=False: only start it."""
        spec = types_pb2.ProcessSpec(args=_args(cmd), env=_env(env), cwd=workdir, user=_user(user),
                                     terminal=tty)
        req = cp.ContainersExecRequest(container_id=container_id, exec_id=exec_id, process=spec)
        resp = call(self.stub.Exec, req, self._t(None))
        return Process(self, container_id, resp.exec_id, resp.pid, stdin=stdin, logs=True,
                       attach=attach, timeout=timeout)

    def wait(self, container_id: str, exec_id: str = "",
             timeout: Optional[float] = None) -> types_pb2.ExitStatus:
        """Waits for init (or an exec) to exit; timeout None = no limit."""
        req = cp.ContainersWaitRequest(container_id=container_id, exec_id=exec_id)
        return call(self.stub.Wait, req, timeout).exit_status

    def signal(self, container_id: str, sig: int, exec_id: str = "", all: bool = False,
               timeout: Optional[float] = None) -> None:
        """Sends signal number ``sig`` to init, an exec, or (all) every process."""
        req = cp.ContainersSignalRequest(container_id=container_id, exec_id=exec_id, signal=sig,
                                         all=all)
        call(self.stub.Signal, req, self._t(timeout))

    def kill(self, container_id: str, sig: int = 9) -> None:
        """Sends SIGKILL (or ``sig``) to init."""
        self.signal(container_id, sig)

    def resize(self, container_id: str, rows: int, cols: int, exec_id: str = "",
               timeout: Optional[float] = None) -> None:
        """Resizes a process's terminal."""
        req = cp.ContainersResizeRequest(container_id=container_id, exec_id=exec_id,
                                         size=types_pb2.ConsoleSize(rows=rows, cols=cols))
        call(self.stub.Resize, req, self._t(timeout))

    def close_stdin(self, container_id: str, exec_id: str = "",
                    timeout: Optional[float] = None) -> None:
        """Closes a process's stdin."""
        req = cp.ContainersCloseStdinRequest(container_id=container_id, exec_id=exec_id)
        call(self.stub.CloseStdin, req, self._t(timeout))

    def stop(self, container_id: str, grace: Optional[float] = None, signal: int = 0,
             timeout: Optional[float] = None) -> types_pb2.ExitStatus:
        """Stops a container: ``signal`` (default: the image's STOPSIGNAL or
        SIGTERM), up to ``grace`` seconds (None = 10, a negative value =
        forever), then SIGKILL; the VM shuts down. Returns init's ExitStatus."""
        if grace is None:
            ms = 0
        elif grace < 0:
            ms = -1
        else:
            ms = max(1, int(grace * 1000))
        req = cp.ContainersStopRequest(container_id=container_id, signal=signal, timeout_ms=ms)
        if timeout is None and self._client.timeout is not None and ms >= 0:
            timeout = self._client.timeout + (ms or 10000) / 1000
        return call(self.stub.Stop, req, timeout).exit_status

    def delete(self, container_id: str, force: bool = False,
               timeout: Optional[float] = None) -> None:
        """Deletes a container (force: kill it first if it runs)."""
        req = cp.ContainersDeleteRequest(container_id=container_id, force=force)
        call(self.stub.Delete, req, self._t(timeout))

    def list(self, all: bool = False, filters: Filters = None,
             timeout: Optional[float] = None) -> List[cp.Container]:
        """Containers, newest first: RUNNING ones, or all=True every one.
        filters: {"label": "k=v", "state": "stopped", "image": ..., "id": prefix}."""
        req = cp.ContainersListRequest(all=all, filters=filters_list(filters))
        return list(call(self.stub.List, req, self._t(timeout)).containers)

    def inspect(self, container_id: str, timeout: Optional[float] = None) -> cp.Container:
        """Describes one container."""
        req = cp.ContainersInspectRequest(container_id=container_id)
        return call(self.stub.Inspect, req, self._t(timeout)).container

    def update(self, container_id: str, memory: int = 0, cpus: float = 0, pids_max: int = 0,
               timeout: Optional[float] = None) -> cp.Container:
        """New limits of a created or running container, in place (0 =
        unlimited): memory in bytes, cpus (1.5 = one and a half CPUs)."""
        req = cp.ContainersUpdateRequest(container_id=container_id, resources=types_pb2.Resources(
            memory_bytes=int(memory), milli_cpus=int(cpus * 1000), pids_max=pids_max))
        return call(self.stub.Update, req, self._t(timeout)).container

    def stats(self, container_id: str, timeout: Optional[float] = None) -> types_pb2.Statistics:
        """One resource usage sample of a RUNNING container."""
        req = cp.ContainersStatsRequest(container_id=container_id)
        return call(self.stub.Stats, req, self._t(timeout)).statistics

    def logs(self, container_id: str, follow: bool = False, tail: int = 0, since: TimeLike = None,
             stdout: bool = True, stderr: bool = True, until: TimeLike = None,
             timeout: Optional[float] = None) -> Stream[cp.LogEntry]:
        """Init's output log as LogEntry records (``.data`` one line,
        ``.stream``, ``.time``). follow: keep streaming until the container
        stops (cancel() or leaving a ``with`` block ends it early). tail: only
        the last N entries (of those the other filters let through).
        since / until: entries at or after / at or before (a datetime, epoch
        seconds or Timestamp); with follow, until also ends the stream."""
        req = cp.ContainersLogsRequest(container_id=container_id, follow=follow, tail=tail,
                                       since=_timestamp(since), until=_timestamp(until),
                                       include_stdout=stdout, include_stderr=stderr)
        return Stream(self.stub.Logs(req, timeout=timeout), lambda m: m.entries)

    def copy_in(self, container_id: str, path: str, archive: Union[PathOrFile, bytes],
                uid: Optional[int] = None, gid: Optional[int] = None,
                timeout: Optional[float] = None) -> int:
        """Extracts a tar archive (file name, binary file or bytes) into
        directory ``path`` of the container; returns the bytes sent. uid/gid:
        own every entry (else the archive's owners are kept). The container
        must be CREATED or RUNNING; its image needs no tar."""
        chown = uid is not None or gid is not None
        header = cp.ContainersCopyInHeader(container_id=container_id, path=path, uid=uid or 0,
                                           gid=gid or 0, chown=chown)

        def requests():
            yield cp.ContainersCopyInRequest(header=header)
            for chunk in _read_chunks(archive):
                yield cp.ContainersCopyInRequest(data=chunk)
        return call(self.stub.CopyIn, requests(), self._t(timeout)).bytes_received

    def copy_out(self, container_id: str, path: str, dest: PathOrFile,
                 timeout: Optional[float] = None) -> types_pb2.FileInfo:
        """Writes file or directory ``path`` of the container as a tar
        archive to ``dest`` (file name or binary file; not created when the
        call fails first); returns the path's FileInfo (mode, owner, type,
        size). NotFoundError for a missing path."""
        stream = Stream(self.stub.CopyOut(cp.ContainersCopyOutRequest(
            container_id=container_id, path=path), timeout=timeout), lambda m: [m])
        first = next(stream)  # fails before dest is created
        own = not hasattr(dest, "write")
        f: BinaryIO = open(dest, "wb") if own else dest
        try:
            f.write(first.data)
            for m in stream:
                f.write(m.data)
        finally:
            if own:
                f.close()
        return first.info


__all__ = ["Container", "ContainerError", "Containers", "Output", "Process", "RunResult",
           "process_spec"]
