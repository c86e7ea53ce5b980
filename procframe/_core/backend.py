"""What a backend declares (:class:`BackendInfo`) and returns per process (:class:`Launcher`).

The capability constants it may declare are in :mod:`procframe._core.capabilities`.
"""

from __future__ import annotations

import abc
import re
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class BackendInfo:
    """A backend as its plugin declares it through ``procframe_declare_backend``.

    Immutable; two declarations are equal when every field but ``plugin`` is.
    (A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``,
    which would cost a program's first ``get_context()`` about 8 ms.)
    """

    __slots__ = ("available", "capabilities", "description", "name", "plugin", "reason")

    name: str
    plugin: object
    capabilities: frozenset[str]
    available: bool
    reason: str
    description: str

    def __init__(
        self,
        name: str,
        plugin: object,
        capabilities: Iterable[str] = frozenset(),
        available: bool = True,
        reason: str = "",
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"backend name {name!r} must be lowercase letters, digits and '_', "
                "starting with a letter"
            )
        if not available and not reason:
            raise ValueError(f"backend {name!r} is unavailable but gives no reason")
        for field, value in (
            ("name", name),
            ("plugin", plugin),
            ("capabilities", frozenset(capabilities)),
            ("available", available),
            ("reason", reason),
            ("description", description),
        ):
            object.__setattr__(self, field, value)

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.capabilities, self.available, self.reason, self.description)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"BackendInfo(name={self.name!r}, capabilities={self.capabilities!r}, "
            f"available={self.available!r}, reason={self.reason!r}, "
            f"description={self.description!r})"
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"BackendInfo is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"BackendInfo is immutable: cannot delete {name!r}")

    def has(self, capability: str) -> bool:
        """True if the backend declares ``capability``."""
        return capability in self.capabilities


class Launcher(abc.ABC):
    """One started OS process, as the parent sees it (CPython calls this ``Popen``).

    A backend's ``procframe_launch_process`` returns one.  ``pid`` and
    ``sentinel`` (a file descriptor that becomes readable when the process
    has exited) are set once it is returned.
    """

    pid: int
    sentinel: int

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Return the exit code if the process has exited, else ``None``.  Never blocks."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (``None``: forever); return the exit code or ``None``."""

    @abc.abstractmethod
    def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the process; do nothing if it has already exited."""

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM)."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the process at once (SIGKILL)."""
        self.send_signal(signal.SIGKILL)

    def interrupt(self) -> None:
        """Interrupt the process (SIGINT: ``KeyboardInterrupt`` in a Python child)."""
        self.send_signal(signal.SIGINT)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the descriptors held for the process.  Called after it has exited."""
