"""What a backend declares (:class:`BackendInfo`) and returns per process (:class:`Launcher`)."""

from __future__ import annotations

import abc
import re
import signal
from dataclasses import dataclass, field

# Capabilities a backend may declare.  Conformance tests ask for these, never
# for a backend by name.
SEPARATE_MEMORY = "separate_memory"
"""Each child has its own address space: what it changes in memory its parent does not see;
what crosses to it (queue items, Pipe messages, Pool tasks and their outcomes) is pickled, so
an unpicklable object fails in the sender; ``os._exit(n)`` (or a signal it sends itself) ends
only the child, whose exitcode is then ``n``; its threads and at-exit handlers are its own."""
LOCAL_PIDS = "local_pids"
"""``Process.pid`` is a process of this machine: ``os.kill`` reaches it, and the child's
``os.getpid()`` equals it."""
INHERITS_PARENT_MEMORY = "inherits_parent_memory"
"""The child starts with (or shares) the parent's memory: unpicklable targets and lambdas work."""
PICKLES_PROCESS = "pickles_process"
"""The Process object crosses to the child by pickle; unpicklable ones fail at start()."""
REIMPORTS_MAIN = "reimports_main"
"""The child re-imports the parent's ``__main__`` as ``__mp_main__``."""
POSIX_SIGNALS = "posix_signals"
"""terminate/kill/interrupt deliver SIGTERM/SIGKILL/SIGINT; a killed child's exitcode is -signum.

Without it they may raise (a thread cannot be stopped from outside), and a daemonic child is
not signalled when its parent exits: it ends with the parent's process."""
PARENT_DEATH = "parent_death"
"""A child is killed within seconds when its parent dies, even by SIGKILL."""
PASSES_DESCRIPTORS = "passes_descriptors"
"""Pipe ends, queues and locks are the kernel's (a Pipe end's messages travel through its
``fileno()``, in procframe's wire format); passed as Process arguments, they reach the child
by descriptor, as copies of its own: the parent may close its end once the child has started.
(Without it, objects passed to a child are still shared with it, as the same objects.)"""
TASK_TIMEOUTS = "task_timeouts"
"""``Pool(task_timeout=...)`` stops a task that runs too long (its worker is replaced)."""
MANAGER_SERVER = "manager_server"
"""``Manager()`` runs a server process; its objects are reached through proxies (``address``,
``connect()``, ``register()``, authentication)."""
KNOWN_CAPABILITIES = frozenset(
    {
        SEPARATE_MEMORY,
        LOCAL_PIDS,
        INHERITS_PARENT_MEMORY,
        PICKLES_PROCESS,
        REIMPORTS_MAIN,
        POSIX_SIGNALS,
        PARENT_DEATH,
        PASSES_DESCRIPTORS,
        TASK_TIMEOUTS,
        MANAGER_SERVER,
    }
)

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
