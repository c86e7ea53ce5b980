"""What a backend declares (:class:`BackendInfo`) and returns per process (:class:`Launcher`).

The capability constants it may declare are in :mod:`procframe._core.capabilities`.
"""

from __future__ import annotations

import abc
import re
import signal
from dataclasses import dataclass, field

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class BackendInfo:
    """A backend as its plugin declares it through ``procframe_declare_backend``."""

    name: str
    plugin: object = field(compare=False, repr=False)
    capabilities: frozenset[str] = frozenset()
    available: bool = True
    reason: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"backend name {self.name!r} must be lowercase letters, digits and '_', "
                "starting with a letter"
            )
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        if not self.available and not self.reason:
            raise ValueError(f"backend {self.name!r} is unavailable but gives no reason")

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
