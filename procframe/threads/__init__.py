"""The ``threads`` backend: processes on threads of this process, objects shared in memory.

``procframe.get_context("threads")`` (or ``PROCFRAME_BACKEND=threads``, or
``set_backend("threads")``) runs multiprocessing code in one process, as
``multiprocessing.dummy`` does, behind the same API: to step through it with
a debugger, to run it on a free-threaded Python, or to test it quickly.

What differs from a backend of OS processes:

* A ``Process`` runs in a thread.  There, ``current_process()`` is that
  Process and ``parent_process()`` the process that started it (this OS
  process's own one has no sentinel); threads it starts in turn are this OS
  process's.  ``pid`` is the thread's native id, not a process: nothing
  signals it.  ``terminate()``, ``kill()`` and ``interrupt()`` raise
  :class:`procframe.NotSupportedError` (a thread cannot be stopped from outside), and
  a daemonic one is neither signalled nor waited for at exit: it ends with
  the interpreter.
* Nothing is pickled: a queue or a Pipe hands over the object itself, which
  the threads then share; targets may be lambdas and closures.
* ``Pool`` is a :class:`procframe.pool.ThreadPool`; ``task_timeout`` is
  refused.  ``Manager()`` returns plain objects; what needs a server raises.
"""

from __future__ import annotations

from procframe._core.errors import NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe.threads.backend import ThreadsBackend, plugin

__all__ = ["NotSupportedError", "ThreadsBackend", "plugin"]


def __getattr__(name: str) -> object:
    # The plugin is imported on first use: procframe.dummy and the public classes of
    # procframe.queues and procframe.synchronize import this package's objects without
    # pluggy, which the plugin's hook implementations need.
    if name in ("ThreadsBackend", "plugin"):
        from procframe.threads import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
