"""How a shared-memory segment is published under a name and found by it (Linux).

A generated name, ``pf_<creator pid>_<descriptor>_<token>``, is opened as
``/proc/<pid>/fd/<descriptor>``.  A chosen name is published as an abstract
Unix socket carrying the creator's pid, descriptor and token, and looked up in
``/proc/net/unix``.  Either way the memfd's label and metadata must show the
token, so a reused pid or descriptor never attaches the wrong memory.  The
creator keeps a table of the segments it holds (:class:`Owner`), which a
forked child lets go of.  A creator other than the program's main process
also hands each new segment to the program's keeper
(:mod:`procframe.posix.shm_handoff`), which publishes every segment it holds,
generated names included, as an abstract socket of its own: a generated name
whose creator is gone is looked up there.
"""

from __future__ import annotations

import errno
import os
import threading

from procframe._core import osutil
from procframe.posix import shm_segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_GENERATED = "pf"
_LOCATOR = "procframe-shm/"
_RACE_PATIENCE = 5.0
"""Seconds a creator waits for a rival creating the same name at the same moment to settle."""


def check_name(name: object) -> str:
    """The key of ``name``: without its leading slashes (``/a`` and ``a`` are one name)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__}")
    key = name.lstrip("/")
    if "\0" in key:
        raise ValueError("embedded null character in name")
    if not key or "/" in key:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), name)
    if len(key.encode("utf-8")) > shm_segment.MAX_NAME:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), name)
    return key


def _exists(name: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name)


def parse_generated(key: str) -> tuple[int, int, str] | None:
    """(pid, descriptor, token) of a generated name, None for any other name."""
    parts = key.split("_")
    if len(parts) != 4 or parts[0] != _GENERATED:
        return None
    pid, fd, token = parts[1:]
    if not (pid.isascii() and pid.isdigit() and fd.isascii() and fd.isdigit()):
        return None
    if len(token) != 16 or token.strip("0123456789abcdef"):
        return None
    return int(pid), int(fd), token


def _open_verified(pid: int, fd: int, token: str, strict: bool = False) -> int | None:
    """A new descriptor of the memfd labelled ``token`` that ``pid`` holds at ``fd``, or None.

    ``PermissionError`` (``pid`` is another user's process) propagates if ``strict``.
    """
    path = f"/proc/{pid}/fd/{fd}"
    label = f"/memfd:{shm_segment.LABEL}{token}"
    targets = (label, label + " (deleted)")
    try:
        if os.readlink(path) not in targets:
            return None
        opened = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except PermissionError:
        if strict:
            raise
        return None
    # The descriptor may have been closed and reused between the two steps.
    try:
        if os.readlink(f"/proc/self/fd/{opened}") in targets:
            return opened
    except OSError:
        pass
    os.close(opened)
    return None


def _open_segment(
    pid: int, fd: int, token: str, strict: bool = False
) -> tuple[int, shm_segment.Meta] | None:
    """A new descriptor and the metadata of the segment labelled ``token`` that ``pid``
    holds at ``fd``, or None (as :func:`_open_verified`)."""
    opened = _open_verified(pid, fd, token, strict)
    if opened is None:
        return None
    try:
        meta = shm_segment.read_meta(opened)
    except BaseException:
        os.close(opened)
        raise
    if meta is None:
        os.close(opened)
        return None
    return opened, meta


def locator_prefix(key: str) -> str:
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{_LOCATOR}{os.getuid()}/{digest}/"


def _published(key: str) -> list[tuple[int, int, str]]:
    """(pid, descriptor, token) of every segment published under ``key`` (a chosen name by
    its creator, any name by the program's keeper)."""
    prefix = ("@" + locator_prefix(key)).encode("ascii")
    with open("/proc/net/unix", "rb") as table:  # the kernel's list of Unix sockets
        listing = table.read()
    found = []
    at = listing.find(prefix)
    while at >= 0:
        end = listing.find(b"\n", at)
        fields = listing[at + len(prefix) : end if end >= 0 else None].strip().split(b"/")
        if len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit():
            found.append((int(fields[0]), int(fields[1]), fields[2].decode("ascii", "replace")))
        at = listing.find(prefix, at + len(prefix))
    return found


_last_found: dict[str, tuple[int, int, str]] = {}
"""Where each chosen name was found last: tried before reading the kernel's socket list."""


def open_by_key(key: str, only: str = "") -> tuple[int, shm_segment.Meta] | None:
    """A new descriptor and the metadata of the attachable segment named ``key``, or None.

    With ``only``, the segment must be the one with that token.
    """
    generated = parse_generated(key)
    if generated is None:
        return _open_published(key, False, only)
    if only and only != generated[2]:
        return None
    try:
        found = _open_at(key, [generated], True, strict=True)
    except PermissionError:  # another user's process has the creator's pid by now
        kept = _open_published(key, True, generated[2])
        if kept is None:
            raise
        return kept
    if found is not None:
        return found[0], found[1]
    return _open_published(key, True, generated[2])  # the keeper may hold it


def _open_published(key: str, generated: bool, only: str) -> tuple[int, shm_segment.Meta] | None:
    """As :func:`open_by_key`, through the abstract sockets that publish ``key``: where it
    was found last first, then the kernel's list."""
    last = _last_found.get(key)
    found = None if last is None else _open_at(key, [last], generated, only)
    if found is None:
        found = _open_at(key, _published(key), generated, only)
        if found is None:
            return None
        if len(_last_found) > 256:
            _last_found.clear()
        _last_found[key] = found[2]
    return found[0], found[1]


def _open_at(
    key: str,
    places: list[tuple[int, int, str]],
    generated: bool,
    only: str = "",
    strict: bool = False,
) -> tuple[int, shm_segment.Meta, tuple[int, int, str]] | None:
    """A new descriptor, the metadata and the place of the first of ``places`` (pid,
    descriptor, token) that holds the attachable segment ``key``, or None."""
    for pid, fd, token in places:
        if only and token != only:
            continue
        found = _open_segment(pid, fd, token, strict=strict)
        if found is None:
            continue
        opened, meta = found
        if (
            (generated or meta.name == key)
            and meta.token == token
            and meta.committed
            and not meta.unlinked
        ):
            return opened, meta, (pid, fd, token)
        os.close(opened)
    return None


def _settle(key: str, token: str) -> None:
    """Raise FileExistsError unless this creator, published as ``token``, may have ``key``.

    Every creator publishes before it looks.  Of two rivals, the later to
    publish sees the other: it yields to a committed rival or one with a
    smaller token, and waits for one with a larger token to commit (then it
    yields) or to give up.  So at most one of them commits.
    """
    import time

    deadline = time.monotonic() + _RACE_PATIENCE
    for pid, fd, rival in _published(key):
        if rival == token:
            continue
        while True:
            found = _open_segment(pid, fd, rival)
            if found is None:
                break
            opened, meta = found
            os.close(opened)
            if meta.name != key or meta.unlinked:
                break
            if meta.committed or rival < token or time.monotonic() > deadline:
                raise _exists(key)
            time.sleep(0.001)


class Owner:
    """What keeps a name attachable in its creator: the memfd and, for a chosen name, its socket."""

    __slots__ = ("data_len", "fd", "key", "socket", "token")

    def __init__(self, fd: int, data_len: int, token: str, key: str, socket: Any = None) -> None:
        self.fd = fd
        self.data_len = data_len
        self.token = token
        self.key = key
        self.socket = socket

    def unlinked(self) -> bool:
        """True if some process has unlinked the name."""
        try:
            return shm_segment.flag(self.fd, self.data_len, shm_segment.UNLINKED_AT)
        except OSError:
            return False

    def release(self) -> None:
        """Let go of the name (the memory lives on in the processes that map it)."""
        with _owners_lock:
            owners.pop(self.token, None)
            fd, self.fd = self.fd, -1
            sock, self.socket = self.socket, None
        if sock is not None:
            sock.close()
        if fd >= 0:
            os.close(fd)


owners: dict[str, Owner] = {}
"""The names this process created and still holds, by token."""
_owners_lock = threading.Lock()


def sweep() -> None:
    """Let go of the names this process created that another process has unlinked."""
    for owner in list(owners.values()):
        if owner.unlinked():
            owner.release()


def _after_fork_in_child() -> None:
    # The parent stays the creator of its names; this child's copies of its
    # descriptors would only keep unlinked memory alive.
    global _owners_lock
    _owners_lock = threading.Lock()
    for owner in list(owners.values()):
        owner.release()


if shm_segment.USABLE:
    os.register_at_fork(after_in_child=_after_fork_in_child)


def create(key: str | None, size: int) -> tuple[str, Owner]:
    """Create a segment (named ``key``, else a generated name); return its key and owner."""
    sweep()
    token = os.urandom(8).hex()
    data_len = shm_segment.data_length(size)
    if key is None:
        fd = shm_segment.create(token, size, "", committed=True)
        key = f"{_GENERATED}_{os.getpid()}_{fd}_{token}"
        owner = Owner(fd, data_len, token, key)
    else:
        if parse_generated(key) is not None:
            found = open_by_key(key)
            if found is not None:
                os.close(found[0])
                raise _exists(key)
            raise ValueError(
                f"{key!r} has the form of a generated name (pf_<pid>_<fd>_<token>); "
                "choose another name, or pass name=None to have one generated"
            )
        import socket

        fd = shm_segment.create(token, size, key, committed=False)
        owner = Owner(fd, data_len, token, key)
        try:
            owner.socket = osutil.blocking_socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            locator = f"{locator_prefix(key)}{os.getpid()}/{fd}/{token}"
            owner.socket.bind(b"\0" + locator.encode("ascii"))
            _settle(key, token)
            shm_segment.set_flag(fd, data_len, shm_segment.COMMITTED_AT)
        except BaseException:
            try:  # a rival waiting for this attempt stops waiting
                shm_segment.set_flag(fd, data_len, shm_segment.UNLINKED_AT)
            finally:
                owner.release()
            raise
        _last_found[key] = (os.getpid(), fd, token)
    with _owners_lock:
        owners[token] = owner
    return key, owner
