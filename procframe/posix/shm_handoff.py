"""A creator's side of the keeper: handing each new segment over, telling of unlinks.

A process of the program other than its main process that creates a segment
hands a descriptor of it to the program's keeper
(:mod:`procframe.posix.shm_keeper`, started on first need) once the segment
is complete and before ``SharedMemory(create=True)`` returns (:func:`keep`):
from then on the creator's end, however it comes (a normal exit, a signal,
``os._exit()``, the end of its parent), leaves the name attachable until
``unlink()`` or the end of the program.  The creator keeps its own hold too,
so its name is found where it always was while it lives.  A creator killed
before the hand-off completes takes the segment with it (nobody had its name
yet).  The main process never hands anything over: its end is the program's.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time

from procframe._core import osutil, process, system
from procframe.posix import shm_keeper, shm_segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe.posix.shm_names import Owner

PATIENCE = 20.0
"""Seconds a creator waits for a keeper (a new one starts an interpreter) to answer."""
_ATTEMPTS = 3
"""How many keepers a creator tries (one may be leaving as the creator arrives)."""

_needless_in = 0
"""The pid of a process found to need no keeper (the program's main process, or a process of
no procframe program): its creates skip the hand-off at once (a forked child looks again)."""
_warned_in = 0
"""The pid of a process already warned that no keeper can be started for it."""


def program() -> tuple[str, int] | None:
    """The calling process's program and the pid of its main process; None if unknown."""
    name = process.current_process()._config.get("program")
    if not isinstance(name, str):
        return None
    pid, _, _ = name.partition("-")
    return (name, int(pid)) if pid.isdigit() else None


def keep(owner: Owner) -> None:
    """Have the program's keeper hold the new, complete segment ``owner`` too, unless this is
    the program's main process.

    Raises ``OSError`` if the keeper cannot take it.  Where no keeper can be started
    (no Python interpreter to run one: a frozen program) it hands nothing over and warns
    once per process (``RuntimeWarning``): the segment then lasts as long as its creator.
    """
    global _needless_in
    pid = os.getpid()
    if _needless_in == pid:
        return
    mine = program()
    if mine is None or mine[1] == pid:
        _needless_in = pid
        return
    if interpreter() is None:
        _warn_unkept(pid)
        return
    try:
        hand_off([owner], *mine)
    except OSError as exc:
        code = exc.errno or (errno.ETIMEDOUT if isinstance(exc, TimeoutError) else errno.EAGAIN)
        raise OSError(
            code,
            f"the program's shared-memory keeper cannot take the new block {owner.key!r} "
            f"({exc}), so it could not outlive process {pid}; it was not created",
        ) from exc


def interpreter() -> str | None:
    """The Python interpreter that runs a keeper; None in a frozen program or without one."""
    executable = sys.executable
    if not executable or getattr(sys, "frozen", False) or not os.access(executable, os.X_OK):
        return None
    return executable


def _warn_unkept(pid: int) -> None:
    global _warned_in
    if _warned_in == pid:
        return
    _warned_in = pid
    import warnings

    warnings.warn(
        "no Python interpreter to run the program's shared-memory keeper "
        f"(sys.executable is {sys.executable!r}"
        f"{', a frozen program' if getattr(sys, 'frozen', False) else ''}): the blocks "
        f"that process {pid} creates stay attachable only while it runs",
        RuntimeWarning,
        stacklevel=4,  # the caller of SharedMemory()
    )


def abandon(owner: Owner) -> None:
    """Undo the creation of ``owner``'s segment: mark it unlinked (a keeper that took it lets
    go, a rival creator of its name stops waiting for it), then let go of it here."""
    try:
        if owner.fd >= 0 and not shm_segment.set_flag(
            owner.fd, owner.data_len, shm_segment.UNLINKED_AT
        ):
            where = shm_segment.keeper_address(owner.fd, owner.data_len)
            if where:
                notify_unlinked(where)
    finally:
        owner.release()


def hand_off(owners: list[Owner], program: str, main_pid: int) -> None:
    """Make the keeper of ``program`` hold ``owners``' segments (they stay held here too)."""
    where = shm_keeper.address(program)
    for attempt in range(_ATTEMPTS):
        client = _connect(where) or _start_keeper(where, main_pid)
        try:
            for first in range(0, len(owners), shm_keeper.MAX_FDS):
                chunk = [o for o in owners[first : first + shm_keeper.MAX_FDS] if o.fd >= 0]
                if chunk:
                    _send_chunk(client, chunk)
            return
        except (ConnectionError, TimeoutError):
            if attempt == _ATTEMPTS - 1:
                raise
        finally:
            client.close()


def _send_chunk(client: socket.socket, chunk: list[Owner]) -> None:
    message = shm_keeper.HAND_OFF + "\n".join(o.key for o in chunk).encode("utf-8")
    socket.send_fds(client, [message], [o.fd for o in chunk])
    answer = client.recv(1024)
    if answer[:1] == shm_keeper.REFUSED:
        raise OSError(errno.EAGAIN, answer[1:].decode("utf-8", "replace"))
    if answer != shm_keeper.ACK:
        raise ConnectionResetError(errno.ECONNRESET, "the keeper did not take the segments")


def _connect(where: bytes, timeout: float = PATIENCE) -> socket.socket | None:
    """A connection to the keeper at ``where``; None if there is none."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.settimeout(timeout)
    try:
        client.connect(where)
    except (ConnectionRefusedError, FileNotFoundError):
        client.close()
        return None
    except BaseException:
        client.close()
        raise
    return client


def _start_keeper(where: bytes, main_pid: int) -> socket.socket:
    """Start the keeper at ``where`` (unless a rival just did) and connect to it."""
    deadline = time.monotonic() + PATIENCE
    while True:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(where)
        except OSError as exc:
            listener.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            client = _connect(where)  # a rival's keeper, which may be leaving already
            if client is not None:
                return client
            if time.monotonic() > deadline:
                raise TimeoutError("no keeper answers, and none can be started") from None
            time.sleep(0.01)
            continue
        try:
            listener.listen(64)
            _spawn_keeper(listener, main_pid)
            client = _connect(where)  # waits in the listener's backlog for the keeper
        finally:
            listener.close()
        if client is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "the new keeper went away")
        return client


def _spawn_keeper(listener: socket.socket, main_pid: int) -> None:
    """Start the keeper process with ``listener`` and a watch on the main process."""
    import fcntl

    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(main_pid)
        except OSError:
            pidfd = None
    try:
        # The main process must still be ours, not a new process under a reused pid: the
        # watch is opened first, then the process must have started before this one.  One
        # that reused the pid started after the main process exited, so after this one, which
        # the main process (or a descendant of it) started; this one may have been reparented.
        main_start = osutil.process_start_time(main_pid)
        started = osutil.process_start_time(os.getpid())
        if main_start is None or started is None or main_start > started:
            raise ProcessLookupError(
                errno.ESRCH, f"the program's main process {main_pid} has exited"
            )
        # Out of the way of 3 and 4, the descriptors the keeper finds them at.
        moved = [fcntl.fcntl(listener.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)]
        if pidfd is not None:
            moved.append(fcntl.fcntl(pidfd, fcntl.F_DUPFD_CLOEXEC, 10))
        try:
            places = (shm_keeper.LISTENER_FD, shm_keeper.MAIN_PIDFD)
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                *((os.POSIX_SPAWN_DUP2, fd, at) for fd, at in zip(moved, places, strict=False)),
            ]
            watch = "pidfd" if pidfd is not None else "poll"
            starter = os.posix_spawn(
                sys.executable,
                [
                    sys.executable,
                    "-I",
                    "-c",
                    _KEEPER_MAIN,
                    system.package_root(),  # the keeper runs isolated from PYTHONPATH
                    str(main_pid),
                    str(main_start),
                    watch,
                ],
                os.environ,
                file_actions=actions,
                setsid=True,
            )
        finally:
            for fd in moved:
                os.close(fd)
        try:  # it starts the keeper and exits once ready to serve
            _, status = os.waitpid(starter, 0)
        except ChildProcessError:  # reaped already (SIGCHLD ignored)
            status = 0
        if status:
            raise ChildProcessError(
                errno.ECHILD,
                f"the keeper did not start ({sys.executable} exited with "
                f"{os.waitstatus_to_exitcode(status)})",
            )
    finally:
        if pidfd is not None:
            os.close(pidfd)


_KEEPER_MAIN = (
    # posix_spawn closes no descriptor: drop every inherited one at once (a spawned
    # creator's sentinel among them, whose closing tells its parent that it exited).
    "import os; os.closerange(5, os.sysconf('SC_OPEN_MAX')); "
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from procframe.posix.shm_keeper import main; "
    "import hashlib, resource; "  # what serving uses: loaded while the starter waits anyway
    # The keeper is no child of its starter, which may run long after it (no zombie there).
    "os.fork() and os._exit(0); "
    "main(sys.argv[1:])"
)


def notify_unlinked(where: bytes) -> None:
    """Tell the keeper at ``where`` that a segment it holds was unlinked (best effort)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.setblocking(False)
    try:
        client.connect(where)
        client.send(shm_keeper.UNLINKED)
    except OSError:  # no keeper any more, or a busy one: its sweep will notice
        pass
    finally:
        client.close()


def kept_names(timeout: float = 5.0) -> set[str]:
    """The names the keeper of the calling process's program holds (for leak checks)."""
    mine = program()
    if mine is None or not shm_segment.USABLE:
        return set()
    client = _connect(shm_keeper.address(mine[0]), timeout)
    if client is None:
        return set()
    try:
        client.send(shm_keeper.LIST)
        listing = client.recv(1 << 22)
    except OSError:
        return set()
    finally:
        client.close()
    return set(filter(None, listing.decode("utf-8", "replace").split("\n")))
