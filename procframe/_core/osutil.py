"""Small operating-system helpers shared by the launchers and their children."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_SIGKILL = 9  # the same number on every POSIX system (no need to import signal for it)
PARENT_POLL_INTERVAL = 0.25
"""Seconds between checks of the parent pid where the kernel cannot signal its death."""
PARENT_DEATH_GRACE = 3.0
"""Seconds a child that outlives its parent's death signal (it handles or ignores SIGTERM)
has before SIGKILL: the grace daemonic children get at a normal exit."""


def death_signal(daemon: bool) -> int:
    """The signal a child gets when its parent dies: SIGKILL if daemonic, else SIGTERM."""
    import signal

    return int(signal.SIGKILL if daemon else signal.SIGTERM)


def arm_parent_death(signum: int, parent_pid: int, kernel_may_signal: bool) -> None:
    """Have ``signum`` delivered to this process once ``parent_pid`` has died, and SIGKILL
    :data:`PARENT_DEATH_GRACE` seconds later if it is still running.

    On Linux the kernel sends ``signum`` (``PR_SET_PDEATHSIG``), but it signals when the
    parent *thread* that created us exits, so the launcher passes
    ``kernel_may_signal=False`` when it ran on a thread that may end before its
    process; a daemon thread then watches the parent pid instead.  A signal other
    than SIGKILL may be handled or ignored: a thread then waits for the parent's
    death to send SIGKILL after the grace.
    """
    if kernel_may_signal and sys.platform.startswith("linux") and _prctl_pdeathsig(signum):
        if os.getppid() != parent_pid:  # it died before we armed the signal
            os.kill(os.getpid(), signum)
        if signum != _SIGKILL:
            _start_parent_watcher(None, parent_pid)
        return
    _start_parent_watcher(signum, parent_pid)


_prctl: Callable[..., int] | None = None


def load_prctl() -> Callable[..., int] | None:
    """The C ``prctl`` function (Linux), loaded once.

    A launcher that forks calls this first, so its children find it loaded.
    Uses ``_ctypes`` directly: importing all of ``ctypes`` would cost a spawned
    child more than everything else it imports.
    """
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        try:
            import _ctypes

            class _CFunction(_ctypes.CFuncPtr):
                _flags_ = _ctypes.FUNCFLAG_CDECL

            address = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]
            _prctl = _CFunction(address)
        except (ImportError, OSError, AttributeError):
            return None
    return _prctl


def _prctl_pdeathsig(signum: int) -> bool:
    prctl = load_prctl()
    return prctl is not None and prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0


def _start_parent_watcher(signum: int | None, parent_pid: int) -> None:
    """Start a thread that, once ``parent_pid`` died, sends ``signum`` (unless None: the
    kernel sends it) to this process, then SIGKILL after :data:`PARENT_DEATH_GRACE`.

    A bare ``_thread`` (about 0.1 ms to start; the rest of its set-up runs on it):
    ``threading.enumerate()`` does not list it, and the interpreter does not wait
    for it at exit.
    """
    import _thread

    global _watchers
    if _watchers == 0:
        os.register_at_fork(after_in_child=_forget_watched_pidfd)
    _watchers += 1
    _thread.start_new_thread(_watch_parent, (signum, parent_pid))


_watchers = 0
_watched_pidfd: int | None = None


def _forget_watched_pidfd() -> None:
    # A forked child has no watcher thread: the descriptor it watched with is useless there.
    global _watched_pidfd
    fd, _watched_pidfd = _watched_pidfd, None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _watch_parent(signum: int | None, parent_pid: int) -> None:
    _wait_for_death(parent_pid)
    me = os.getpid()
    if signum is not None:
        os.kill(me, signum)
    if signum != _SIGKILL:
        import time

        time.sleep(PARENT_DEATH_GRACE)
        os.kill(me, _SIGKILL)


def _wait_for_death(parent_pid: int) -> None:
    """Return once ``parent_pid`` is no longer this process's parent: sleep on a pidfd of
    it where the system has them (Linux), else look every :data:`PARENT_POLL_INTERVAL`."""
    global _watched_pidfd
    try:
        fd = os.pidfd_open(parent_pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        _watched_pidfd = fd
        if os.getppid() == parent_pid:  # else it died before the pidfd: it may be another's
            import select

            poll = select.poll()
            poll.register(fd, select.POLLIN)
            poll.poll()
        _forget_watched_pidfd()
        return
    import time

    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_INTERVAL)


def launched_from_main_thread() -> bool:
    """True if the caller is the main thread, which lives as long as the process."""
    import threading

    return threading.current_thread() is threading.main_thread()


def read_exactly(fd: int, size: int) -> bytes:
    """Read ``size`` bytes from ``fd``; raise ``EOFError`` if it ends sooner."""
    chunks = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError(f"stream ended {remaining} bytes short of {size}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


PIPE_SIZE = 1 << 20
"""The buffer procframe asks for its pipes (the system may cap it lower)."""


def enlarge_pipe(fd: int) -> None:
    """Ask for a buffer of ``PIPE_SIZE`` for the pipe of ``fd`` (fewer blocked writers).

    Only Linux can (``F_SETPIPE_SZ``); elsewhere, or above the system's limit,
    the pipe keeps its default size, which works too.
    """
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        fcntl.fcntl(fd, set_size, PIPE_SIZE)
    except OSError:
        pass


def packet_pipe(nonblocking: bool) -> tuple[int, int] | None:
    """A pipe in packet mode (``O_DIRECT``): each write of up to ``PIPE_BUF`` bytes is one
    packet, written whole, and each read returns at most one packet.  None where the
    system has no packet-mode pipes (only Linux has them: another system's ``O_DIRECT``
    means something else, or nothing, for a pipe)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not (sys.platform.startswith("linux") and direct and hasattr(os, "pipe2")):
        return None
    flags = direct | os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)
    try:
        read_fd, write_fd = os.pipe2(flags)
    except OSError:
        return None
    enlarge_pipe(write_fd)
    return read_fd, write_fd


def anonymous_memory(name: str, size: int = 0, sealed: bool = False) -> int:
    """A descriptor of ``size`` zeroed bytes that have no name anywhere (a memfd).

    ``name`` only labels it in ``/proc/PID/fd``.  Where memfd does not exist,
    an unlinked temporary file stands in.  The memory is freed when the last
    descriptor and mapping of it are gone, however their holders exit.
    ``sealed`` (memfd only) seals its size once set: nobody can shrink or grow it.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name, os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if sealed else 0))
    elif sealed:  # pragma: no cover - platforms without memfd
        import errno

        raise OSError(errno.ENOSYS, "sealed memory needs memfd")
    else:  # pragma: no cover - platforms without memfd
        import tempfile

        fd, path = tempfile.mkstemp(prefix=f"{name}-")
        os.unlink(path)
    try:
        if size:
            os.ftruncate(fd, size)
        if sealed:
            import fcntl

            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (an alignment, a page)."""
    return (n + multiple - 1) // multiple * multiple


# -- sockets in blocking mode, whatever socket.setdefaulttimeout() says ---------------------
# A program that calls socket.setdefaulttimeout(t) gives every new socket object a timeout,
# which Python implements by making its descriptor non-blocking.  procframe's sockets carry
# messages read with os.read and handed to children: they must block, as their readers expect.


def blocking_socket(family: int, kind: int) -> socket.socket:
    """A new socket in blocking mode (no timeout, a blocking descriptor)."""
    import socket

    sock = socket.socket(family, kind)
    sock.setblocking(True)
    return sock


def blocking_socketpair(family: int, kind: int) -> tuple[socket.socket, socket.socket]:
    """A connected pair of sockets, both in blocking mode."""
    import socket

    left, right = socket.socketpair(family, kind)
    left.setblocking(True)
    right.setblocking(True)
    return left, right


def socket_from_fd(fd: int, family: int, kind: int) -> socket.socket:
    """A socket object owning ``fd`` (``socket.socket(fileno=fd)``), in blocking mode.

    Under a default timeout, ``socket.socket(fileno=fd)`` would make the descriptor
    non-blocking, and that flag belongs to the open file, which other processes share:
    a peer's blocking read would fail meanwhile.  Where the system has ``SOCK_NONBLOCK``
    the flag is never touched (Python then leaves the descriptor alone).
    """
    import socket

    if socket.getdefaulttimeout() is None:
        return socket.socket(family, kind, fileno=fd)
    sock = socket.socket(family, kind | getattr(socket, "SOCK_NONBLOCK", 0), fileno=fd)
    sock.setblocking(True)
    return sock


# -- descriptors received over a Unix socket, peers of a Unix socket ------------------------


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors of the ``SCM_RIGHTS`` records in ``ancillary`` (from ``recvmsg``),
    which the caller now owns and must close."""
    import array
    import socket

    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def rights(*fds: int) -> tuple[int, int, bytes]:
    """The ``SCM_RIGHTS`` record that hands ``fds`` over with ``sendmsg``."""
    import array
    import socket

    return socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes()


def rights_space(count: int) -> int:
    """The ancillary buffer ``recvmsg`` needs to receive ``count`` descriptors."""
    import array
    import socket

    return socket.CMSG_SPACE(count * array.array("i").itemsize)


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """``(pid, uid, gid)`` of the process that connected Unix socket ``sock``, or None where
    the system cannot tell (no ``SO_PEERCRED``)."""
    import socket
    import struct

    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - platforms without SO_PEERCRED
        return None
    layout = struct.Struct("3i")
    pid, uid, gid = layout.unpack(sock.getsockopt(socket.SOL_SOCKET, option, layout.size))
    return pid, uid, gid


def is_same_user(credentials: tuple[int, int, int] | None) -> bool:
    """True if a peer with ``credentials`` (:func:`peer_credentials`) runs as our user (or
    the system cannot tell: an abstract or private address is then the only barrier)."""
    return credentials is None or credentials[1] == os.geteuid()


def peer_is_same_user(sock: socket.socket) -> bool:
    """True if the process that connected Unix socket ``sock`` runs as this process's user."""
    try:
        return is_same_user(peer_credentials(sock))
    except OSError:  # the peer is gone already
        return False


# -- /proc/<pid>/stat -----------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``state`` first), or None
    if the process is gone or the system has no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it is gone."""
    return _start_time(_stat_fields(pid))


def living_process_start_time(pid: int) -> int | None:
    """As :func:`process_start_time`, but None also for a process that has ended and waits
    to be reaped (a zombie)."""
    fields = _stat_fields(pid)
    if fields and fields[0] in (b"Z", b"X", b"x"):
        return None
    return _start_time(fields)


def _start_time(fields: list[bytes] | None) -> int | None:
    try:
        return int(fields[19]) if fields is not None else None  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def parent_pid(pid: int) -> int | None:
    """The pid of the parent of process ``pid``, or None if it is gone."""
    fields = _stat_fields(pid)
    try:
        return int(fields[1]) if fields is not None else None  # field 4 of proc(5)
    except (IndexError, ValueError):
        return None


# -- text ------------------------------------------------------------------------------------

REPR_LIMIT = 80
"""The longest repr an error message quotes."""


def short_repr(value: object) -> str:
    """``repr(value)``, cut to :data:`REPR_LIMIT` characters; a stand-in if ``repr`` raises."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


def flush_standard_streams() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr``, whatever they are (closed, None, a pipe gone)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
