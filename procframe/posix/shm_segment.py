"""A shared-memory segment on Linux: a sealed memfd of the caller's bytes and a metadata page.

The caller's bytes are rounded up to a page (``data_len``); the page after
them holds: magic, the caller's size, the committed and unlinked flags, the
creator's random token (also the memfd's label) and the name.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys

from procframe._core import osutil

PAGESIZE = mmap.PAGESIZE

USABLE = (
    sys.platform.startswith("linux")
    and hasattr(os, "memfd_create")
    and hasattr(os, "MFD_ALLOW_SEALING")
    and os.path.isdir("/proc/self/fd")
)
"""True where segments can be memfds reached through /proc."""

MAX_NAME = 255
"""Longest name, in UTF-8 bytes (the ``NAME_MAX`` of ``shm_open``)."""
LABEL = "procframe-shm:"
"""The memfd's label is this and the token."""

_MAGIC = b"PFSHM\x00\x01\x00"
_META = struct.Struct("=8sQBB6x16sH")
COMMITTED_AT = 16
UNLINKED_AT = 17
"""Offsets of the flags in the metadata page."""


class Meta:
    """What a segment's metadata page says."""

    __slots__ = ("committed", "data_len", "name", "size", "token", "unlinked")

    def __init__(
        self, size: int, data_len: int, committed: bool, unlinked: bool, token: str, name: str
    ) -> None:
        self.size = size
        self.data_len = data_len
        self.committed = committed
        self.unlinked = unlinked
        self.token = token
        self.name = name


def data_length(size: int) -> int:
    """Where the metadata page of a segment of ``size`` bytes starts."""
    return osutil.round_up(size, PAGESIZE)


def read_meta(fd: int) -> Meta | None:
    """The metadata of the segment open at ``fd``; None if it is not one of ours."""
    total = os.fstat(fd).st_size
    if total < PAGESIZE or total % PAGESIZE:
        return None
    data_len = total - PAGESIZE
    raw = os.pread(fd, _META.size + MAX_NAME, data_len)
    if len(raw) < _META.size:
        return None
    magic, size, committed, unlinked, token, length = _META.unpack_from(raw)
    if magic != _MAGIC or size > data_len or length > MAX_NAME:
        return None
    name = raw[_META.size : _META.size + length].decode("utf-8", "replace")
    return Meta(
        size, data_len, bool(committed), bool(unlinked), token.decode("ascii", "replace"), name
    )


def create(token: str, size: int, key: str, committed: bool) -> int:
    """A sealed memfd of ``size`` bytes plus its metadata page."""
    data_len = data_length(size)
    fd = osutil.anonymous_memory(LABEL + token, data_len + PAGESIZE, sealed=True)
    try:
        encoded = key.encode("utf-8")
        meta = _META.pack(_MAGIC, size, committed, False, token.encode("ascii"), len(encoded))
        os.pwrite(fd, meta + encoded, data_len)
    except BaseException:
        os.close(fd)
        raise
    return fd


def flag(fd: int, data_len: int, at: int) -> bool:
    """Whether a metadata flag is set, read through ``fd``."""
    return os.pread(fd, 1, data_len + at) != b"\x00"


def set_flag(fd: int, data_len: int, at: int) -> bool:
    """Set a metadata flag through ``fd``; return whether it was already set."""
    was = flag(fd, data_len, at)
    if not was:
        os.pwrite(fd, b"\x01", data_len + at)
    return was
