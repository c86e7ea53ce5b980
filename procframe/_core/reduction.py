"""Objects that hold file descriptors cross to a new child by descriptor.

A Pipe end, a Queue or a lock passed as an argument to a child started by a
fresh-interpreter backend (spawn, forkserver) is pickled into the child's
payload.  Its ``__reduce__`` calls :func:`export_fd`, which adds the
descriptor to the launch in progress and pickles a *token* instead; the
launcher hands the descriptors to the child (``pass_fds``, or SCM_RIGHTS to
the fork server), and in the child :func:`import_fd` turns each token back
into a descriptor.  Nothing is re-opened by name, so nothing named can leak.
Under fork nothing is pickled: the child inherits the objects and their
descriptors.

A Connection may also be pickled outside a launch, into a message for a
process that is already running: :func:`share_fds` then holds duplicates of
its descriptors for the receiver to collect (:mod:`procframe._core.fdshare`).
Messages are pickled with :func:`dumps`, which releases those duplicates at
once if the pickling fails (nobody could collect them), and a pickling that
only tests whether something can be pickled runs under :class:`probing`,
which shares nothing.  Every other object that holds a descriptor can only
cross at a child's start.
"""

from __future__ import annotations

import _thread
from pickle import HIGHEST_PROTOCOL, PicklingError
from pickle import dumps as _pickle_dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe._core.fdshare import SharedFds

MAX_FDS = 250
"""Descriptors one child can receive at start (one SCM_RIGHTS message carries 253)."""

_launch = _thread._local()
_received: list[int] = []
shares_made = 0
"""How many times this process shared descriptors for a running process: numbers the shares,
and marks where a pickling began (:func:`release_shares_since`)."""
_share_lock = _thread.allocate_lock()


class collecting_fds:
    """Within this block, :func:`export_fd` collects descriptors for the child being launched."""

    def __enter__(self) -> list[int]:
        self.fds: list[int] = []
        _launch.fds = self.fds
        return self.fds

    def __exit__(self, *exc: object) -> None:
        _launch.fds = None


def collecting() -> bool:
    """True while a child's launch is collecting descriptors: :func:`export_fd` would accept."""
    return getattr(_launch, "fds", None) is not None


class InheritanceOnlyError(TypeError, RuntimeError):
    """An object holding a descriptor was pickled outside a child's launch.

    A ``TypeError`` as any object pickle refuses, and the ``RuntimeError``
    that ``multiprocessing`` raises for a Lock or a Queue sent through a pool
    or a queue ("... should only be shared between processes through
    inheritance").
    """


def export_fd(fd: int, what: str) -> int:
    """Register ``fd`` (held by ``what``) for the child being launched; return its token."""
    fds: list[int] | None = getattr(_launch, "fds", None)
    if fds is None:
        raise InheritanceOnlyError(
            f"{what} holds a file descriptor and can only be passed to a child process as an "
            "argument of Process (or inherited under fork); it cannot be pickled otherwise"
        )
    if fd in fds:
        return fds.index(fd)
    if len(fds) >= MAX_FDS:
        raise ValueError(f"a child process can receive at most {MAX_FDS} descriptors at start")
    fds.append(fd)
    return len(fds) - 1


def import_fd(token: int) -> int:
    """In a child: the descriptor that ``token`` stands for."""
    try:
        return _received[token]
    except IndexError:
        raise RuntimeError(
            f"descriptor token {token} was not received; this object can only be unpickled "
            "in the child it was sent to"
        ) from None


def set_received(fds: list[int]) -> None:
    """In a child, before unpickling its payload: the descriptors it was given, in order."""
    _received[:] = fds


def share_fds(fds: list[int]) -> SharedFds:
    """Outside a launch: a picklable stand-in for ``fds`` that the process unpickling it
    (any running process with this process's authkey) turns back into duplicates of them,
    with its ``collect()``.  Under :class:`probing`, a stand-in that shares nothing."""
    global shares_made
    from procframe._core import fdshare

    if getattr(_launch, "probing", False):
        return fdshare.SharedFds(b"", b"", len(fds))
    with _share_lock:
        shares_made += 1
        serial = shares_made
    return fdshare.share(fds, serial)


def dumps(obj: object, buffer_callback: Any = None) -> bytes:
    """``pickle.dumps(obj, HIGHEST_PROTOCOL, buffer_callback=buffer_callback)``, for a
    message to another process: the ``pickle`` serializer's ``dumps``.

    If pickling raises, the descriptors it shared (a Connection inside ``obj``) are
    released before the error propagates: the message is never sent, so nobody would
    ever collect them.  An object pickle refuses gets a note that names it and the
    serializers that would carry it (:func:`procframe._core.serializing.explained`).
    """
    mark = shares_made
    try:
        return _pickle_dumps(obj, HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
    except BaseException as exc:
        if shares_made != mark:
            release_shares_since(mark)
        if isinstance(exc, (PicklingError, AttributeError, TypeError)) and not (
            isinstance(exc, InheritanceOnlyError) or probing_now()
        ):
            from procframe._core.serializing import explained

            explained(exc, obj, "pickle")
        raise


def release_shares_since(mark: int) -> None:
    """Release the descriptors shared since ``mark`` (the pickle that shared them failed)."""
    if shares_made != mark:
        from procframe._core import fdshare

        fdshare.release_after(mark)


def probing_now() -> bool:
    """True within :class:`probing`: a failure is only a test, no need to explain it."""
    return bool(getattr(_launch, "probing", False))


class probing:
    """Within this block, pickling only tests what can be pickled: a Connection pickled for a
    running process shares nothing (its pickle cannot be received)."""

    def __enter__(self) -> None:
        self._before = getattr(_launch, "probing", False)
        _launch.probing = True

    def __exit__(self, *exc: object) -> None:
        _launch.probing = self._before
