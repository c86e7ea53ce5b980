"""The authentication handshake as steps driven by arriving bytes: many at once, one deadline each.

:class:`Handshake` runs one side of the exchange of :mod:`procframe.posix.handshake`
over a non-blocking socket: :meth:`Handshake.advance` reads what has arrived
(never a byte past the handshake's last message: the connection's first
message stays in the socket) and answers it, so a ``Listener`` can drive the
handshakes of many peers from one thread, and one that stalls or trickles
holds nobody.  :func:`complete` drives one handshake to its end within one
deadline for the whole exchange (a ``Client``'s).
"""

from __future__ import annotations

import os
import struct
import time

from procframe._core.errors import AuthenticationError
from procframe._core.fdwait import wait_readable
from procframe.posix import handshake

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_LENGTH = struct.Struct("!I")


class Handshake:
    """One side (``server`` or client) of the handshake over the non-blocking socket ``fd``.

    The server sends its challenge at once; then each message of the peer is
    answered as it arrives.  Raises :class:`AuthenticationError` for every failure
    (a wrong key, garbage, a peer that hung up), and sends nothing unpickled
    to anyone: the handshake carries only bytes.
    """

    __slots__ = ("_authkey", "_challenge", "_fd", "_header", "_missing", "_parts", "_steps")

    def __init__(self, fd: int, authkey: bytes, server: bool) -> None:
        if not isinstance(authkey, (bytes, bytearray)):
            raise ValueError(f"Authkey must be bytes, not {type(authkey).__name__}")
        self._fd = fd
        self._authkey = bytes(authkey)
        self._challenge = b""
        self._header = True
        self._missing = _LENGTH.size
        self._parts: list[bytes] = []
        steps: list[Callable[[bytes], None]]
        if server:
            self._send_challenge()
            steps = [self._check_response, self._answer_challenge, self._check_verdict]
        else:
            steps = [self._answer_challenge, self._welcomed_then_challenge, self._check_response]
        steps.reverse()
        self._steps = steps

    @property
    def done(self) -> bool:
        """True once the handshake has passed."""
        return not self._steps

    def advance(self) -> bool:
        """Read what the peer has sent and answer it; True once the handshake has passed."""
        while self._steps:
            message = self._read_message()
            if message is None:
                return False
            self._steps.pop()(message)
        return True

    # -- the steps ------------------------------------------------------------------

    def _send_challenge(self) -> None:
        self._challenge = b"{%s}%s" % (
            handshake.DIGEST.encode("ascii"),
            os.urandom(handshake.MESSAGE_LENGTH),
        )
        self._send(handshake.CHALLENGE + self._challenge)

    def _check_response(self, response: bytes) -> None:
        try:
            handshake.verify(self._authkey, self._challenge, response)
        except AuthenticationError:
            try:
                self._send(handshake.FAILURE)
            except AuthenticationError:
                pass
            raise
        self._send(handshake.WELCOME)

    def _answer_challenge(self, message: bytes) -> None:
        if not message.startswith(handshake.CHALLENGE):
            raise AuthenticationError("the peer sent no valid challenge")
        message = message[len(handshake.CHALLENGE) :]
        if len(message) < handshake.LEGACY_CHALLENGE_LENGTH:
            raise AuthenticationError(f"the peer's challenge is too short ({len(message)} bytes)")
        self._send(handshake.response_to(self._authkey, message))

    def _check_verdict(self, verdict: bytes) -> None:
        if verdict != handshake.WELCOME:
            raise AuthenticationError("the peer rejected our authkey")

    def _welcomed_then_challenge(self, verdict: bytes) -> None:
        self._check_verdict(verdict)
        self._send_challenge()

    # -- bytes ----------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        frame = _LENGTH.pack(len(payload)) + payload
        try:
            written = os.write(self._fd, frame)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            raise AuthenticationError(f"the peer is gone during authentication: {exc}") from None
        if written != len(frame):  # a few hundred bytes into a fresh socket's buffer
            raise AuthenticationError("the peer does not read its side of the authentication")

    def _read_message(self) -> bytes | None:
        """The next whole message, or None until it has arrived; only its own bytes are read."""
        while True:
            try:
                chunk = os.read(self._fd, self._missing)
            except BlockingIOError:
                return None
            except OSError as exc:
                raise AuthenticationError(
                    f"the peer is gone during authentication: {exc}"
                ) from None
            if not chunk:
                raise AuthenticationError("the peer closed the connection during authentication")
            self._parts.append(chunk)
            self._missing -= len(chunk)
            if self._missing:
                continue
            data = b"".join(self._parts)
            self._parts.clear()
            if not self._header:
                self._header, self._missing = True, _LENGTH.size
                return data
            (size,) = _LENGTH.unpack(data)
            if size > handshake.MAX_MESSAGE:
                raise AuthenticationError(
                    f"malformed authentication message: a length of {size} bytes "
                    f"(at most {handshake.MAX_MESSAGE})"
                )
            if size == 0:
                self._missing = _LENGTH.size
                return b""
            self._header, self._missing = False, size


def complete(sock_fd: int, authkey: bytes, server: bool, timeout: float) -> None:
    """Run the handshake on the non-blocking socket ``sock_fd`` within ``timeout`` seconds in all.

    Raises :class:`AuthenticationError` if it fails or is not over in time.
    """
    deadline = time.monotonic() + timeout
    exchange = Handshake(sock_fd, authkey, server)
    while not exchange.advance():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not wait_readable([sock_fd], remaining):
            raise AuthenticationError(
                f"the peer did not complete authentication within {timeout} s"
            )
