"""A creator's side of the keeper: handing segments over at exit, telling of unlinks.

A process of the program other than its main process that creates a segment
arms :func:`hand_off_at_exit` (once per process).  When that process ends
normally, the segments it still holds and nobody unlinked go to the
program's keeper (:mod:`procframe.posix.shm_keeper`), started on first need,
and their names stay attachable until ``unlink()`` or the end of the
program.  The main process never hands anything over: its end is the
program's.  A creator killed by a signal hands nothing over (its names end
with it, as they always did).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time

from procframe._core import osutil, process
from procframe.posix import shm_keeper, shm_names, shm_segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe.posix.shm_names import Owner

PATIENCE = 20.0
"""Seconds an exiting creator waits for a keeper (a new one starts an interpreter) to answer."""
_ATTEMPTS = 3
"""How many keepers a creator tries (one may be leaving as the creator arrives)."""

_armed_in = 0
"""The pid of the process in which :func:`arm` ran (a forked child arms again)."""


def program() -> tuple[str, int] | None:
    """The calling process's program and the pid of its main process; None if unknown."""
    name = process.current_process()._config.get("program")
    if not isinstance(name, str):
        return None
    pid, _, _ = name.partition("-")
    return (name, int(pid)) if pid.isdigit() else None


def arm() -> None:
    """Hand this process's segments to the keeper when it exits (unless it is the main one)."""
    global _armed_in
    pid = os.getpid()
    if _armed_in == pid:
        return
    _armed_in = pid
    mine = program()
    if mine is not None and mine[1] != pid:
        # After the children (which may use the segments), after a SharedMemoryManager's
        # server has unlinked its own.
        process.on_exit_after_children(hand_off_at_exit)


def hand_off_at_exit() -> None:
    """Hand the segments this process still holds to the keeper; say so if that fails."""
    if _armed_in != os.getpid():  # a forked child's copy of its parent's exit handlers
        return
    shm_names.sweep()
    owners = list(shm_names.owners.values())
    mine = program()
    if not owners or mine is None:
        return
    try:
        hand_off(owners, *mine)
    except Exception as exc:  # the process is exiting: say what is lost, do not fail its exit
        names = ", ".join(repr(owner.key) for owner in owners if owner.fd >= 0)
        sys.stderr.write(
            f"procframe: process {os.getpid()} could not hand its shared memory to the "
            f"program's keeper ({exc}); these names end with it: {names}\n"
        )


def hand_off(owners: list[Owner], program: str, main_pid: int) -> None:
    """Make the keeper of ``program`` hold ``owners``' segments, then let go of them here."""
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
    if client.recv(16) != shm_keeper.ACK:
        raise ConnectionResetError(errno.ECONNRESET, "the keeper did not take the segments")
    for owner in chunk:  # the keeper publishes them now: the names never went missing
        owner.release()


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

    main_start = shm_keeper.start_time(main_pid)
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(main_pid)
        except OSError:
            pidfd = None
    try:
        # The main process must still be ours (not a new process under a reused pid): the
        # watch is opened first, then the process is found among this one's ancestors.
        if main_start is None or not _is_ancestor(main_pid):
            raise LookupError(f"the program's main process {main_pid} has exited")
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
            os.posix_spawn(
                sys.executable,
                [
                    sys.executable,
                    "-I",
                    "-c",
                    _KEEPER_MAIN,
                    _package_root(),
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
    finally:
        if pidfd is not None:
            os.close(pidfd)


_KEEPER_MAIN = (
    # posix_spawn closes no descriptor: drop every inherited one at once (a spawned
    # creator's sentinel among them, whose closing tells its parent that it exited).
    "import os; os.closerange(5, os.sysconf('SC_OPEN_MAX')); "
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from procframe.posix.shm_keeper import main; main(sys.argv[1:])"
)


def _package_root() -> str:
    """The directory procframe is imported from (the keeper runs isolated from PYTHONPATH)."""
    here = os.path.abspath(__file__)  # <root>/procframe/posix/shm_handoff.py
    return os.path.dirname(os.path.dirname(os.path.dirname(here)))


def _is_ancestor(pid: int) -> bool:
    """True if ``pid`` is the parent of this process, or its parent's parent, and so on."""
    current = os.getppid()
    for _ in range(1024):
        if current == pid:
            return True
        if current <= 1:
            return False
        parent = osutil.parent_pid(current)
        if parent is None:
            return False
        current = parent
    return False


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
