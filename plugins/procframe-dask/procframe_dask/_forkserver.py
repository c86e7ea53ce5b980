"""A fork server per Dask worker: starts a Process's OS process in milliseconds.

A child started as ``python -m procframe_dask._child`` imports procframe, Dask's
``distributed`` and cloudpickle before its target runs: most of a second of CPU.  The
server (``python -m procframe_dask._forkserver``, one per worker process, started on
first use) imports them once and forks each child from there.

The worker asks for a child over a Unix socket: one message (the working directory
and the environment to add) with the child's descriptors (stdin, stdout, stderr, and
the socket on which the server reports the child's pid, then its exit code).  The
server has no thread, so it may fork; it reaps its children as SIGCHLD says they
ended.  It exits when its worker has ended, and its children with it (SIGKILL): a
Process lives on its worker, as a local child dies with its machine.

:class:`ForkedChild` is what the worker holds: the part of ``subprocess.Popen``'s
API that :func:`procframe_dask._remote.run_process` uses.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

_CODE = struct.Struct("q")
_MAX_REQUEST = 1 << 20
_CHILD_FDS = 4
"""stdin, stdout, stderr, and the socket that reports the child's pid and exit code."""
_MAX_EXTRA_FDS = 4
"""Descriptors a child may get besides those, each named by an environment variable."""
PRELOADED = (
    "procframe",
    "procframe_dask",
    "procframe_dask._child",
    "procframe_dask.launcher",
    "procframe_dask.primitives",
    "procframe_dask.sync",
    "procframe_dask.queues",
    "procframe_dask.pipes",
    "procframe_dask.shared",
    "distributed",
    "cloudpickle",
)
"""What the server imports once, so that its children need not."""
START_TIMEOUT = 30.0
"""Seconds the worker waits for the server to fork a child and report its pid."""
WORKER_CHECK = 1.0
"""Seconds between the server's looks at whether its worker still runs."""


# -- the worker's side ---------------------------------------------------------------


class ForkedChild:
    """A child the server forked: pid, pipes, ``poll``/``wait``/signals as ``Popen``'s."""

    def __init__(self, pid: int, status: socket.socket, stdin: Any, stdout: Any, stderr: Any):
        self.pid = pid
        self.returncode: int | None = None
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._status = status
        self._lock = threading.Lock()

    def _collect(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            ready, _, _ = select.select([self._status], [], [], timeout)
            if not ready:
                return None
            data = _recv_exactly(self._status, _CODE.size)
            # No code: the server died before its child ended (the worker is ending).
            self.returncode = _CODE.unpack(data)[0] if data else 255
            self._status.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired("procframe_dask._child", timeout or 0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:  # it ended meanwhile
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The worker's handle on its fork server."""

    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "procframe_dask._forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._control = ours
        self._lock = threading.Lock()

    def start(self, cwd: str | None, env: dict[str, str], fds: dict[str, int]) -> ForkedChild:
        """Fork a child that runs ``procframe_dask._child`` in ``cwd`` with ``env`` added,
        and each descriptor of ``fds`` named to it by its environment variable."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        status, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs = [stdin_r, stdout_w, stderr_w, status_theirs.fileno()]
        request = pickle.dumps((cwd, env, list(fds)))
        try:
            with self._lock:
                socket.send_fds(self._control, [request], [*theirs, *fds.values()])
        except OSError:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            status.close()
            raise
        finally:
            for fd in theirs[:3]:
                os.close(fd)
            status_theirs.close()
        status.settimeout(START_TIMEOUT)
        try:
            data = _recv_exactly(status, _CODE.size)
        except OSError:
            data = b""
        status.settimeout(None)
        if not data:
            status.close()
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise OSError("the fork server did not start the process")
        return ForkedChild(
            _CODE.unpack(data)[0],
            status,
            os.fdopen(stdin_w, "wb"),
            os.fdopen(stdout_r, "rb"),
            os.fdopen(stderr_r, "rb"),
        )

    def alive(self) -> bool:
        return self._process.poll() is None


_server: ForkServer | None = None
_server_lock = threading.Lock()


def start_child(
    cwd: str | None, env: dict[str, str], fds: dict[str, int], server_env: dict[str, str]
) -> Any:
    """A child running ``procframe_dask._child`` in ``cwd`` with ``env`` added and
    ``fds`` passed (each named by an environment variable): forked by this worker's
    server, which is started (with ``server_env``) on first use; a fresh interpreter
    if that fails."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            try:
                _server = ForkServer(server_env)
            except OSError:
                _server = None
        server = _server
    if server is not None:
        try:
            return server.start(cwd, env, fds)
        except OSError:
            pass
    return subprocess.Popen(
        [sys.executable, "-m", "procframe_dask._child"],
        cwd=cwd if cwd and os.path.isdir(cwd) else None,
        env={**server_env, **env, **{name: str(fd) for name, fd in fds.items()}},
        pass_fds=tuple(fds.values()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


# -- the server ----------------------------------------------------------------------


def _run_child(fds: list[int], cwd: str | None, env: dict[str, str], server_pid: int) -> None:
    """In the forked child: die with the server (so with its worker), take the
    descriptors as 0, 1, 2, then run the Process."""
    from procframe.backends import arm_parent_death

    # The server was forked from nothing but its main thread: the kernel may signal.
    arm_parent_death(int(signal.SIGKILL), server_pid, True)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds[:3]:
        if fd > 2:
            os.close(fd)
    os.environ.update(env)
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    if sys.path and not sys.flags.safe_path:
        sys.path[0] = os.getcwd()  # as ``python -m`` started here would have it
    from procframe_dask import _child

    code = 1
    try:
        _child.main()  # ends with os._exit
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(control_fd: int) -> None:
    """Fork a child per request on ``control_fd``; report each one's pid and exit code."""
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's Ctrl-C is the worker's
    reporting: dict[int, socket.socket] = {}
    worker = os.getppid()
    while True:
        try:
            ready, _, _ = select.select([control, wake_r], [], [], WORKER_CHECK)
        except InterruptedError:
            continue
        if os.getppid() != worker:
            return  # the worker ended (whoever else holds the control socket)
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(reporting)
        if control not in ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST, _CHILD_FDS + _MAX_EXTRA_FDS)
        except OSError:
            message, fds = b"", []
        if not message:
            return  # the worker ended
        try:
            _fork_one(message, fds, reporting, (control, wake_r, wake_w))
        except Exception:  # this request fails (the worker falls back); the others go on
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        _reap(reporting)


def _fork_one(
    message: bytes, fds: list[int], reporting: dict[int, socket.socket], server: tuple[Any, ...]
) -> None:
    """Fork the child of one request; report its pid on its status socket."""
    control, wake_r, wake_w = server
    cwd, env, named = pickle.loads(message)
    env.update(zip(named, map(str, fds[_CHILD_FDS:]), strict=True))
    server_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sock in (control, *reporting.values()):
                sock.close()
            os.close(wake_r)
            os.close(wake_w)
            os.close(fds[3])
            _run_child(fds, cwd, env, server_pid)
        finally:
            os._exit(1)  # never back into the server's loop
    status = socket.socket(fileno=fds[3])
    for fd in (*fds[:3], *fds[_CHILD_FDS:]):
        os.close(fd)
    reporting[pid] = status
    try:
        status.sendall(_CODE.pack(pid))
    except OSError:
        pass


def _reap(reporting: dict[int, socket.socket]) -> None:
    while reporting:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status = reporting.pop(pid, None)
        if status is not None:
            try:
                status.sendall(_CODE.pack(os.waitstatus_to_exitcode(wait_status)))
            except OSError:
                pass
            status.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
