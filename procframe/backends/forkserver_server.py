"""The fork server's own program (see :mod:`procframe.backends.forkserver` for the protocol)."""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import socket
import sys

from procframe._core import osutil
from procframe._core.reduction import MAX_FDS
from procframe.backends import payload
from procframe.backends.base import exitcode_from_status
from procframe.backends.forkserver_client import EXITCODE, FORK_REQUEST, PID

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def main(control_fd: int) -> None:
    """Serve fork requests on ``control_fd`` until it closes."""
    control = osutil.socket_from_fd(control_fd, socket.AF_UNIX, socket.SOCK_STREAM)
    setup: dict[str, Any] = pickle.loads(payload.read_frame(control_fd))
    # A Ctrl-C in the terminal goes to the whole process group; the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    osutil.arm_parent_death(int(signal.SIGKILL), setup["parent_pid"], setup["kernel_may_signal"])
    sys.path[:] = setup["sys_path"]
    _preload(setup)
    try:
        Server(control).serve()
    finally:
        control.close()
    # The parent waits for this process to end (no server outlives its parent), so skip
    # the interpreter's teardown (5-15 ms): a server has nothing to clean up, and exit
    # handlers its preloaded modules registered belong to the parent's program.
    osutil.flush_standard_streams()
    os._exit(0)


def _preload(setup: dict[str, Any]) -> None:
    import importlib

    # What every child needs anyway, imported once here instead of once per child.
    import procframe._core.process  # noqa: F401
    import procframe.backends.child as child

    for name in setup["preload"]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            sys.stderr.write(f"procframe fork server: cannot preload {name!r}: {exc}\n")
    if setup["main"] is not None:
        try:
            child.import_main(*setup["main"])
        except BaseException:
            # Each child retries the import and reports the error itself.
            sys.modules.pop(child.MAIN_ALIAS, None)


class Server:
    """The fork server's loop: fork on request, report each child's exit."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, socket.socket] = {}
        self.selector: selectors.BaseSelector | None = None
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        os.set_blocking(self.wakeup_r, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector = selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        selector.register(self.wakeup_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self.control:
                        if not self._handle_request():
                            return
                    else:
                        self._drain_wakeups()
                self._reap()
        finally:
            self._reap()

    def _handle_request(self) -> bool:
        try:
            message, fds, _flags, _addr = socket.recv_fds(self.control, 1, MAX_FDS + 1)
        except OSError:
            return False
        if not message:
            return False  # the parent closed the control socket: stop
        if message != FORK_REQUEST or not fds:
            for fd in fds:
                os.close(fd)
            return True
        status = osutil.socket_from_fd(fds[0], socket.AF_UNIX, socket.SOCK_STREAM)
        resources = fds[1:]
        try:
            pid = os.fork()
        except OSError as exc:
            sys.stderr.write(f"procframe fork server: fork failed: {exc}\n")
            pid = -1
            status.close()  # the parent sees the connection close without a pid
        if pid == 0:
            self._become_child(status, resources)
        for fd in resources:  # the child has its own copies
            os.close(fd)
        if pid < 0:
            return True
        self.children[pid] = status
        try:
            status.sendall(PID.pack(pid))
        except OSError:
            pass  # the parent gave up on this child; it will read the payload and fail
        return True

    def _become_child(self, status: socket.socket, resources: list[int]) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            server_pid = os.getppid()
            self.control.close()
            if self.selector is not None:
                self.selector.close()
            os.close(self.wakeup_r)
            os.close(self.wakeup_w)
            for other in self.children.values():
                other.close()
            data = payload.read_frame(status.fileno())
            status.close()
            from procframe.backends.child import run_payload

            code = run_payload(data, server_pid, resources)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            osutil.flush_standard_streams()
            os._exit(code)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wakeup_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sock = self.children.pop(pid, None)
            if sock is not None:
                try:
                    sock.sendall(EXITCODE.pack(exitcode_from_status(status)))
                except OSError:
                    pass
                sock.close()
