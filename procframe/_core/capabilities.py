"""The capabilities a backend may declare: what the conformance kit's ``requires`` asks for.

Conformance tests ask for these, never for a backend by name.  Kept apart
from :mod:`procframe._core.backend` so that a child can read them without
importing what a declaration needs.
"""

from __future__ import annotations

SEPARATE_MEMORY = "separate_memory"
"""Each child has its own address space: what it changes in memory its parent does not see;
what crosses to it (queue items, Pipe messages, Pool tasks and their outcomes) is pickled, so
an unpicklable object fails in the sender; ``os._exit(n)`` (or a signal it sends itself) ends
only the child, whose exitcode is then ``n``; its threads and at-exit handlers are its own."""
LOCAL_PIDS = "local_pids"
"""``Process.pid`` is a process of this machine: ``os.kill`` reaches it, and the child's
``os.getpid()`` equals it.  A pool's workers are children of this process too: a lost
worker's pid and exit code are known."""
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
HOST_MEMORY = "host_memory"
"""Every process of the program runs on this machine and can map the same memory:
``RawValue``/``RawArray`` and the objects under ``Value``/``Array`` are ctypes objects in
memory that every process maps, ``shared_memory.SharedMemory`` blocks are this machine's, and
a big buffer may cross in shared memory without a copy.  (Without it, ``Value`` and ``Array``
are the backend's objects with the same methods, and the names that need this machine's
memory raise, saying why.)"""
TASKS_RUN_ONCE = "tasks_run_once"
"""A pool runs each call once: a worker that dies fails the call it was running
(``WorkerLostError``) and repeats none that had ended.  (Without it a call whose worker died
before its result was fetched may run again: at least once, as on a cluster that recomputes
what a lost worker held.)"""
KNOWN_CAPABILITIES = frozenset(
    {
        HOST_MEMORY,
        TASKS_RUN_ONCE,
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
