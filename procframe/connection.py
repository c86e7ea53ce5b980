"""Connections between processes: ``Pipe``, ``Listener``, ``Client`` and ``wait``.

The API of ``multiprocessing.connection``; the code lives in
:mod:`procframe.posix.connection`.
"""

from __future__ import annotations

from procframe._core.errors import AuthenticationError, BufferTooShort
from procframe.posix.connection import (
    MAX_MESSAGE_SIZE,
    AddressFamilyError,
    Client,
    Connection,
    Listener,
    PacketConnection,
    Pipe,
    address_type,
    answer_challenge,
    deliver_challenge,
    wait,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "AddressFamilyError",
    "AuthenticationError",
    "BufferTooShort",
    "Client",
    "Connection",
    "Listener",
    "PacketConnection",
    "Pipe",
    "address_type",
    "answer_challenge",
    "deliver_challenge",
    "wait",
]
