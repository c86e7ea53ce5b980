"""A shared-memory segment on Linux: a sealed memfd of the caller's bytes and a metadata page.

The caller's bytes are rounded up to a page (``data_len``); the page after
them holds: magic, the caller's size, the committed and unlinked flags, the
creator's random token (also the memfd's label) and the name; further on, the
address of the keeper holding the segment once its creator has exited
(:mod:`procframe.posix.shm_keeper`), which ``unlink()`` tells.
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
KEEPER_AT = 512
"""Offset in the metadata page of the keeper's address: a length byte, then the address."""
MAX_ADDRESS = 108
"""Longest address of a Unix socket."""


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


def keeper_address(fd: int, data_len: int) -> bytes:
    """The address of the keeper holding the segment open at ``fd``; empty if none does."""
    raw = os.pread(fd, 1 + MAX_ADDRESS, data_len + KEEPER_AT)
    return raw[1 : 1 + raw[0]] if raw and raw[0] <= MAX_ADDRESS else b""


def keeper_address_in(buf: mmap.mmap, data_len: int) -> bytes:
    """As :func:`keeper_address`, read from a mapping of the whole segment."""
    at = data_len + KEEPER_AT
    length = buf[at]
    return buf[at + 1 : at + 1 + length] if length <= MAX_ADDRESS else b""


def set_keeper_address(fd: int, data_len: int, address: bytes) -> None:
    """Record through ``fd`` that the keeper at ``address`` holds the segment."""
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"a keeper address is at most {MAX_ADDRESS} bytes, not {len(address)}")
    os.pwrite(fd, bytes([len(address)]) + address, data_len + KEEPER_AT)
