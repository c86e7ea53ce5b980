"""The authentication handshake of ``Listener``/``Client``: the standard library's, 3.12 and later.

The server sends ``#CHALLENGE#{sha256}`` and 40 random bytes; the client answers
``{sha256}`` and the HMAC-SHA256 of everything after ``#CHALLENGE#``, keyed with
the authkey; the server answers ``#WELCOME#`` or ``#FAILURE#``.  Then the roles
swap.  Digests are compared in constant time, and nothing a peer sends is ever
unpickled before it has passed.

Legacy peers (the standard library before 3.12) speak HMAC-MD5 without a
prefix: a client answers a 20-byte unprefixed challenge with HMAC-MD5, and a
server accepts a bare 16-byte HMAC-MD5 answer, exactly as the standard
library's 3.12 server does.  HMAC-MD5 over a fresh random challenge has no
known forgery (MD5's collisions do not make HMAC forgeable), and refusing it
would lock out the standard library's own clients of Python 3.10 and 3.11.
procframe's own peers always use SHA-256: the server names the digest in its
challenge, and the prefix is under the MAC, so nobody can downgrade it.
"""

from __future__ import annotations

import os
import time

from procframe._core.errors import AuthenticationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe.posix.connection import Connection

HANDSHAKE_TIMEOUT = 20.0
"""Seconds a peer gets for the whole authentication handshake (not for each message)."""
CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
MESSAGE_LENGTH = 40
"""Random bytes of a challenge (more than the 20 of a legacy one, as the protocol needs)."""
DIGEST = "sha256"
ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_NAME = max(len(name) for name in ALLOWED_DIGESTS)
LEGACY_CHALLENGE_LENGTH = 20
_LEGACY_RESPONSE_LENGTH = 16
MAX_MESSAGE = 256


def _recv(connection: Connection, deadline: float) -> bytes:
    if not connection.poll(max(deadline - time.monotonic(), 0.0)):
        raise AuthenticationError(
            f"the peer did not complete authentication within {HANDSHAKE_TIMEOUT} s"
        )
    try:
        return connection.recv_bytes(MAX_MESSAGE)
    except EOFError:
        raise AuthenticationError("the peer closed the connection during authentication") from None
    except OSError as exc:
        raise AuthenticationError(f"malformed authentication message: {exc}") from None


def _digest_name_and_mac(message: bytes) -> tuple[str, bytes]:
    """``("", message)`` for a legacy (MD5, unprefixed) message, else the named digest and
    what follows its ``{name}`` prefix."""
    if len(message) in (LEGACY_CHALLENGE_LENGTH, _LEGACY_RESPONSE_LENGTH):
        return "", message
    if message.startswith(b"{"):
        end = message.find(b"}", 1, _MAX_DIGEST_NAME + 2)
        if end > 0 and message[1:end] in ALLOWED_DIGESTS:
            return message[1:end].decode("ascii"), message[end + 1 :]
    raise AuthenticationError(
        "unsupported authentication message: wrong length, no {digest} prefix, "
        "or a digest not among " + ", ".join(sorted(d.decode() for d in ALLOWED_DIGESTS))
    )


def prepare() -> None:
    """Load what a handshake computes with (OpenSSL's hashes, a few ms): call it while
    waiting for something else, such as a server that is starting."""
    import hmac  # noqa: F401


def _mac(authkey: bytes, message: bytes, digest: str) -> bytes:
    import hmac  # loads OpenSSL's hashes: a cost that only a handshake pays

    try:
        return hmac.new(bytes(authkey), message, digest).digest()
    except ValueError:  # a digest this Python cannot compute (MD5 under FIPS, say)
        raise AuthenticationError(f"digest {digest!r} is not available here") from None


def response_to(authkey: bytes, message: bytes) -> bytes:
    """The answer to challenge ``message`` (what follows ``#CHALLENGE#``)."""
    digest = _digest_name_and_mac(message)[0]
    if not digest:  # a legacy server: a bare HMAC-MD5
        import hmac

        try:
            return hmac.new(bytes(authkey), message, "md5").digest()
        except ValueError:
            digest = DIGEST  # no MD5 here: the legacy server will refuse, as it must
    return b"{%s}%s" % (digest.encode("ascii"), _mac(authkey, message, digest))


def verify(authkey: bytes, message: bytes, response: bytes) -> None:
    """``AuthenticationError`` unless ``response`` proves the peer knows ``authkey``."""
    digest, mac = _digest_name_and_mac(response)
    expected = _mac(authkey, message, digest or "md5")
    import hmac

    if not hmac.compare_digest(expected, mac):
        raise AuthenticationError("the peer does not know the authkey")


def deliver_challenge(connection: Connection, authkey: bytes, digest_name: str = DIGEST) -> None:
    """Challenge the peer to prove it knows ``authkey``; ``AuthenticationError`` if it fails."""
    if not isinstance(authkey, (bytes, bytearray)):
        raise ValueError(f"Authkey must be bytes, not {type(authkey).__name__}")
    message = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(MESSAGE_LENGTH))
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    connection.send_bytes(CHALLENGE + message)
    response = _recv(connection, deadline)
    try:
        verify(authkey, message, response)
    except AuthenticationError:
        connection.send_bytes(FAILURE)
        raise
    connection.send_bytes(WELCOME)


def answer_challenge(connection: Connection, authkey: bytes) -> None:
    """Answer the peer's challenge; ``AuthenticationError`` if it rejects us."""
    if not isinstance(authkey, (bytes, bytearray)):
        raise ValueError(f"Authkey must be bytes, not {type(authkey).__name__}")
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    message = _recv(connection, deadline)
    if not message.startswith(CHALLENGE):
        raise AuthenticationError("the peer sent no valid challenge")
    message = message[len(CHALLENGE) :]
    if len(message) < LEGACY_CHALLENGE_LENGTH:
        raise AuthenticationError(f"the peer's challenge is too short ({len(message)} bytes)")
    connection.send_bytes(response_to(authkey, message))
    if _recv(connection, deadline) != WELCOME:
        raise AuthenticationError("the peer rejected our authkey")
