"""The parent's side of the fork server: start it, ask it for children, watch them.

The server is a fresh interpreter that imports the preload modules once; its
children are forks of that clean, single-threaded process.  Protocol, on a
socketpair per parent (the *control* socket):

* parent -> server, once: the preparation (a framed pickle: sys.path, main
  module, preload list);
* parent -> server, per child: one byte with one descriptor attached, the
  server's end of a new socketpair (the child's *status* socket);
* on the status socket the parent writes the framed payload; the forked child
  reads it; the server writes the child's pid, then its exit code.

The server exits when the control socket closes, that is when the parent
exits or dies; its children then get their parent-death signal.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading

from procframe._core import osutil
from procframe._core.fdwait import wait_readable
from procframe._core.process import add_service, on_exit_after_children, remove_service
from procframe.backends import payload, spawn
from procframe.backends.base import UNKNOWN_EXITCODE, DescriptorLauncher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PID = struct.Struct("!q")
EXITCODE = struct.Struct("!i")
FORK_REQUEST = b"F"

_preload: list[str] = []


class ForkServer:
    """The parent's handle on its fork server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid: int | None = None
        self._control: socket.socket | None = None
        self._popen: Any = None

    def _ensure_running(self) -> socket.socket:
        if self._owner_pid != os.getpid():
            # Inherited through fork from a parent that had a server: not ours.
            self._control, self._popen, self._owner_pid = None, None, os.getpid()
        if self._control is not None and self._popen.poll() is None:
            return self._control
        self._stop()
        ours, theirs = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._popen = spawn.start_interpreter(
                f"from procframe.backends.forkserver_server import main; main({theirs.fileno()})",
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        setup = {
            "sys_path": list(sys.path),
            "preload": list(_preload),
            "main": payload.main_module_spec(),
            "parent_pid": os.getpid(),
            "kernel_may_signal": osutil.launched_from_main_thread(),
        }
        import pickle

        ours.sendall(payload.frame(pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL)))
        self._control = ours
        add_service(self._popen.pid)
        on_exit_after_children(self._stop)
        return ours

    def _stop(self) -> None:
        """Close the control socket (the server exits) and reap the server."""
        control, popen = self._control, self._popen
        self._control = None
        if control is not None and self._owner_pid == os.getpid():
            control.close()
            try:
                popen.wait(timeout=5)
            except Exception:
                popen.kill()
                popen.wait()
            remove_service(popen.pid)

    def launch(self, process: Any, backend: str) -> ForkServerChild:
        """Have the server fork a child that runs ``process``; restart a dead server once."""
        # Children are forked by the server's only thread, which lives as long as it does.
        data, fds, _slab = payload.encode(process, backend, kernel_may_signal=True)
        data = payload.frame(data)
        for attempt in (1, 2):
            try:
                status = self._request_child(fds)
            except OSError:
                if attempt == 2:
                    raise
                continue
            try:
                status.sendall(data)
                pid = _read_pid(status)
            except OSError:
                status.close()
                if attempt == 2 or not self._stop_if_dead():
                    raise
                continue
            except BaseException:
                status.close()
                raise
            return ForkServerChild(pid, status)
        raise AssertionError("unreachable")

    def _request_child(self, fds: list[int]) -> socket.socket:
        """Ask the server for a child that gets ``fds``; return our end of its status socket."""
        with self._lock:
            control = self._ensure_running()
            ours, theirs = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                socket.send_fds(control, [FORK_REQUEST], [theirs.fileno(), *fds])
            except OSError:
                ours.close()
                self._stop()  # the server died: the next request starts another one
                raise
            finally:
                theirs.close()
            return ours

    def _stop_if_dead(self) -> bool:
        """Stop our handle on a server that has died; True if it had."""
        with self._lock:
            control = self._control
            # The server never writes to the control socket: readable means closed.
            if control is None or wait_readable([control.fileno()], 0.0):
                self._stop()
                return True
            return False


def _read_pid(status: socket.socket) -> int:
    data = b""
    while len(data) < PID.size:
        chunk = status.recv(PID.size - len(data))
        if not chunk:
            raise OSError("the fork server closed the connection before reporting a pid")
        data += chunk
    (pid,) = PID.unpack(data)
    return int(pid)


server = ForkServer()


class ForkServerChild(DescriptorLauncher):
    """A child of the fork server; its status socket is the sentinel."""

    def __init__(self, pid: int, status: socket.socket) -> None:
        super().__init__(pid, status.detach())

    def _read_exitcode(self) -> int:
        data = b""
        while len(data) < EXITCODE.size:
            chunk = os.read(self.sentinel, EXITCODE.size - len(data))
            if not chunk:
                return UNKNOWN_EXITCODE  # the server died before reporting
            data += chunk
        (code,) = EXITCODE.unpack(data)
        return int(code)

    def poll(self) -> int | None:
        return self.wait(0.0)

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None and wait_readable([self.sentinel], timeout):
            self.returncode = self._read_exitcode()
        return self.returncode
