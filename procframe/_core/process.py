"""``Process`` and the process-wide bookkeeping around it.

The API of ``multiprocessing.Process``; a process is launched through the
backend of its context, by the ``procframe_launch_process`` hook, once per
``start()``.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys

from procframe._core import checks, lognames, osutil, registry, serializer_registry
from procframe._core.capabilities import POSIX_SIGNALS, SEPARATE_MEMORY
from procframe._core.errors import ProcessNotStartedError, ProcessStateError

# Not typing.TYPE_CHECKING: a spawned child imports this module and typing is slow to import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any, TypeVar

    from procframe._core.backend import Launcher

    Method = TypeVar("Method", bound=Callable[..., Any])

__all__ = [
    "AuthenticationString",
    "BaseProcess",
    "Process",
    "active_children",
    "current_process",
    "parent_process",
]

DAEMON_STOP_GRACE = 3.0
"""Seconds a daemonic child gets to exit after SIGTERM at parent exit, before SIGKILL."""

_spawning = _thread._local()


class AuthenticationString(bytes):
    """The authkey: bytes that refuse to be pickled except to launch a child."""

    def __reduce__(self) -> tuple[Any, ...]:
        if not getattr(_spawning, "active", False):
            raise TypeError(
                "pickling an AuthenticationString is refused for security reasons; "
                "it only travels to a child being started"
            )
        return AuthenticationString, (bytes(self),)


class spawning_payload:
    """Within this block an authkey may be pickled (the payload of a new child)."""

    def __enter__(self) -> None:
        _spawning.active = True

    def __exit__(self, *exc: object) -> None:
        _spawning.active = False


def spawning() -> bool:
    """True within :class:`spawning_payload`: an object that only crosses to a child being
    started (an authkey, a backend's Lock or Queue) may be pickled now."""
    return bool(getattr(_spawning, "active", False))


def _check_closed(method: Method) -> Method:
    def checked(self: BaseProcess, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise ValueError(f"process object {self._name!r} is closed")
        return method(self, *args, **kwargs)

    checked.__name__ = method.__name__
    checked.__qualname__ = method.__qualname__
    checked.__doc__ = method.__doc__
    return checked  # type: ignore[return-value]


class BaseProcess:
    """A process object: a target run in a new OS process; the API of ``threading.Thread``."""

    _context_name: str | None = None
    """The backend of ``ctx.Process``; ``None`` for ``procframe.Process`` (the default's)."""
    _backend: str | None = None
    """The backend the process was started under."""
    _context_serializer: str | None = None
    """The serializer of ``ctx.Process`` when its context names one; else the default's."""
    _serializer: str | None = None
    """The serializer the process was started with: its children's and its objects' default."""
    _counter: Iterator[int]

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        if group is not None:
            raise ValueError("group must be None: process groups are not implemented")
        if target is not None and not callable(target):
            raise TypeError(f"target must be callable, got {type(target).__name__}: {target!r}")
        me = current_process()
        self._identity: tuple[int, ...] = (*me._identity, next(me._counter))
        self._config: dict[str, Any] = dict(me._config)
        self._parent_pid = os.getpid()
        self._parent_name = me.name
        self._launcher: Launcher | None = None
        self._exitcode: int | None = None
        self._closed = False
        self._serves_others = False
        """A service (a manager's server): not joined at exit; its owner stops it."""
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._counter = itertools.count(1)
        self._name = (
            str(name)
            if name is not None
            else f"{type(self).__name__}-{':'.join(map(str, self._identity))}"
        )
        if daemon is not None:
            self.daemon = daemon

    # -- the part a subclass overrides ---------------------------------------

    def run(self) -> None:
        """Method to be run in the child; by default calls ``target(*args, **kwargs)``."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    # -- lifecycle ------------------------------------------------------------

    @_check_closed
    def start(self) -> None:
        """Start the child process; at most once per process object."""
        if self._launcher is not None:
            raise ProcessStateError(f"cannot start a process twice ({self._name!r})")
        if self._parent_pid != os.getpid():
            raise ProcessStateError(
                "can only start a process object created by the current process"
            )
        if current_process()._config.get("daemon"):
            raise ProcessStateError("daemonic processes are not allowed to have children")
        _reap_children()
        backend = registry.resolve(self._backend_name(), "the backend of this Process")
        self._serializer = self._serializer_name()
        self._launcher = registry.launch(self, backend)
        self._backend = backend.name
        _register_child(self)
        if backend.has(SEPARATE_MEMORY):
            # The child has its own copies now; drop ours so they can be freed.  (A child
            # sharing this memory runs with these very attributes: it drops them itself.)
            self._drop_target()
        registry.notify_started(self, backend)

    def _drop_target(self) -> None:
        try:
            del self._target, self._args, self._kwargs
        except AttributeError:  # dropped already
            pass

    def _backend_name(self) -> str:
        """The backend this process starts (started) under."""
        if self._backend is not None:
            return self._backend
        if self._context_name is None:
            return registry.default_backend_name()
        return self._context_name

    def _serializer_name(self) -> str:
        """The serializer this process starts (started) with."""
        if self._serializer is not None:
            return self._serializer
        if self._context_serializer is not None:
            return self._context_serializer
        return serializer_registry.default_name()

    @_check_closed
    def join(self, timeout: float | None = None) -> None:
        """Wait until the process exits, or until ``timeout`` seconds have passed."""
        if self._parent_pid != os.getpid():
            raise ProcessStateError("can only join a child process")
        launcher = self._launcher
        if launcher is None:
            raise ProcessStateError(f"can only join a started process ({self._name!r})")
        if timeout is not None:
            timeout = checks.wait_timeout(timeout)
        code = launcher.wait(timeout)
        if code is not None:
            self._note_exit(code)

    @_check_closed
    def is_alive(self) -> bool:
        """True from ``start()`` until the process exits."""
        if self is current_process():
            return True
        if self._parent_pid != os.getpid():
            raise ProcessStateError("can only test a child process")
        if self._launcher is None or self._exitcode is not None:
            return False
        code = self._launcher.poll()
        if code is None:
            return True
        self._note_exit(code)
        return False

    def _note_exit(self, code: int) -> None:
        if self._exitcode is None:
            self._exitcode = code
            _forget_child(self)
            registry.notify_exited(self, self._backend_name(), code)

    @_check_closed
    def terminate(self) -> None:
        """Send SIGTERM to the process."""
        self._require_started("terminate").terminate()

    @_check_closed
    def kill(self) -> None:
        """Send SIGKILL to the process."""
        self._require_started("kill").kill()

    @_check_closed
    def interrupt(self) -> None:
        """Send SIGINT to the process (``KeyboardInterrupt`` in the child)."""
        self._require_started("interrupt").interrupt()

    def _require_started(self, what: str) -> Launcher:
        if self._launcher is None:
            raise ProcessStateError(f"cannot {what} a process that was never started")
        return self._launcher

    def close(self) -> None:
        """Release the resources held for the process; it must have exited."""
        if self._closed:
            return
        if self._launcher is not None:
            if self.is_alive():
                raise ValueError(
                    f"cannot close process {self._name!r} while it is still running; "
                    "join() it first"
                )
            self._launcher.close()
            self._launcher = None
        _forget_child(self)
        self._closed = True

    # -- attributes -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self._name = name

    @property
    def daemon(self) -> bool:
        """Whether the process is daemonic: terminated when its parent exits."""
        return bool(self._config.get("daemon", False))

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        if self._launcher is not None:
            raise ProcessStateError("cannot set the daemon flag of a started process")
        self._config["daemon"] = bool(daemonic)

    @property
    def authkey(self) -> AuthenticationString:
        """The key used to authenticate connections between processes."""
        key: AuthenticationString = self._config["authkey"]
        return key

    @authkey.setter
    def authkey(self, authkey: bytes) -> None:
        if not isinstance(authkey, (bytes, bytearray)):
            raise TypeError(f"authkey must be bytes, got {type(authkey).__name__}")
        self._config["authkey"] = AuthenticationString(authkey)

    @property
    @_check_closed
    def exitcode(self) -> int | None:
        """``None`` while running; the exit code after; ``-N`` if killed by signal N."""
        if self._launcher is None:
            return None
        if self._exitcode is None:
            code = self._launcher.poll()
            if code is not None:
                self._note_exit(code)
        return self._exitcode

    @property
    @_check_closed
    def pid(self) -> int | None:
        """The process id the backend gives it, ``None`` before ``start()``.

        An OS process id under the backends that declare ``local_pids``; see the
        backend's documentation for the others.
        """
        if self is current_process():
            return _state.pid or os.getpid()
        return None if self._launcher is None else self._launcher.pid

    ident = pid

    @property
    @_check_closed
    def sentinel(self) -> int:
        """A file descriptor that becomes readable when the process exits."""
        if self._launcher is None:
            raise ProcessNotStartedError(
                f"process not started: cannot get the sentinel of {self._name!r} before start()"
            )
        return self._launcher.sentinel

    def __repr__(self) -> str:
        if self is current_process():
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._launcher is None:
            status = "initial"
        else:
            code = self.exitcode
            status = "started" if code is None else f"stopped exitcode={code}"
            if code is not None and code < 0:
                import signal

                try:
                    status = f"stopped exitcode=-{signal.Signals(-code).name}"
                except ValueError:
                    pass
        daemon = " daemon" if self.daemon else ""
        pid = f" pid={self._launcher.pid}" if self._launcher is not None else ""
        parent = f" parent={self._parent_pid}"
        return f"<{type(self).__name__} name={self._name!r}{pid}{parent} {status}{daemon}>"

    # -- pickling (a spawned child receives the process object) ---------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_launcher"] = None
        state["_counter"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._counter = itertools.count(1)

    # -- the child side -------------------------------------------------------

    def _bootstrap(self, notify_bootstrap: bool = True) -> int:
        """Run the process as this new OS process (the child); return the exit code.

        Never raises.  The child becomes the current process first; when ``run()``
        ends it waits for its threads and runs its exit handlers, as an
        interpreter does at exit.
        """
        code = self._run_here(notify_bootstrap, lambda: _become_child(self), _end_os_process)
        _info("process exiting with exitcode %d", code)
        return code

    def _run_here(
        self,
        notify_bootstrap: bool,
        prepare: Callable[[], None] | None = None,
        finish: Callable[[], None] | None = None,
    ) -> int:
        """``prepare()``, the bootstrap observers, ``run()``, ``finish()``; the exit code.

        Never raises.  0 when ``run()`` returns, ``n`` for ``SystemExit(n)``, and
        1 for an exception, whose traceback is printed to stderr after
        ``Process <name>:``.
        """
        exitcode = 1
        try:
            if prepare is not None:
                prepare()
            if notify_bootstrap:
                registry.notify_bootstrap(self, self._backend_name())
            try:
                self.run()
                exitcode = 0
            finally:
                if finish is not None:
                    finish()
        except SystemExit as exc:
            exitcode = _exit_code_of(exc)
        except BaseException:
            exitcode = 1
            import traceback

            sys.stderr.write(f"Process {self._name}:\n")
            traceback.print_exc()
        finally:
            osutil.flush_standard_streams()
        return exitcode


class Process(BaseProcess):
    """A process launched by the default backend, or by its context's (``ctx.Process``)."""


class _MainProcess(BaseProcess):
    def __init__(self) -> None:
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None  # type: ignore[assignment]
        self._launcher = None
        self._exitcode = None
        self._closed = False
        self._counter = itertools.count(1)
        self._config = {
            "authkey": AuthenticationString(os.urandom(32)),
            # Which program a process belongs to (its main process's pid and a random
            # token), inherited by every descendant: shared memory's keeper is found by it.
            "program": f"{os.getpid()}-{os.urandom(8).hex()}",
        }

    def close(self) -> None:
        pass


class _ParentProcess:
    """The parent, as seen from a child (``parent_process()``)."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = self.ident = pid
        self._sentinel: int | None = None

    @property
    def sentinel(self) -> int:
        """A descriptor readable once the parent has exited (Linux: a pidfd)."""
        if self._sentinel is None:
            if not hasattr(os, "pidfd_open"):
                raise NotImplementedError("the parent's sentinel needs os.pidfd_open (Linux)")
            self._sentinel = os.pidfd_open(self.pid)
            if os.getppid() != self.pid:  # it died before we opened the pidfd
                os.close(self._sentinel)
                self._sentinel = _closed_pipe_read_end()
        return self._sentinel

    def is_alive(self) -> bool:
        """True while the parent runs."""
        return os.getppid() == self.pid or _pid_exists(self.pid)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the parent exits, or until ``timeout`` seconds have passed."""
        from procframe._core.fdwait import wait_readable

        wait_readable([self.sentinel], timeout)

    @property
    def exitcode(self) -> None:
        return None

    @property
    def daemon(self) -> bool:
        return False

    def __repr__(self) -> str:
        state = "started" if self.is_alive() else "stopped"
        return f"<_ParentProcess name={self.name!r} pid={self.pid} {state}>"


def _closed_pipe_read_end() -> int:
    r, w = os.pipe()
    os.close(w)
    return r


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ThreadState(_thread._local):
    """What differs in a thread that runs a process of its own (see
    :func:`procframe._core.thread_run.run_in_thread`)."""

    process: BaseProcess | None = None
    parent: _ParentProcess | None = None
    children: set[BaseProcess] | None = None
    pid: int | None = None


_state = _ThreadState()
_current_process: BaseProcess = _MainProcess()
_parent_process: _ParentProcess | None = None
_children: set[BaseProcess] = set()
_exit_handler_installed = False


def current_process() -> BaseProcess:
    """The process object of the calling process (or of the thread-run process calling)."""
    return _state.process or _current_process


def parent_process() -> _ParentProcess | None:
    """The parent of the calling process, or ``None`` in the main process."""
    if _state.process is not None:
        return _state.parent
    return _parent_process


def _my_children() -> set[BaseProcess]:
    """The children of the calling process (those of a thread-run process are its own)."""
    children = _state.children
    return _children if children is None else children


def active_children() -> list[BaseProcess]:
    """The children of this process still running (joining those that have exited)."""
    _reap_children()
    return list(_my_children())


def _reap_children() -> None:
    children = _my_children()
    for child in list(children):
        launcher = child._launcher
        if launcher is None or child._exitcode is not None:
            children.discard(child)
            continue
        code = launcher.poll()
        if code is not None:
            child._note_exit(code)


def _register_child(process: BaseProcess) -> None:
    _my_children().add(process)
    _install_exit_handler()


def _forget_child(process: BaseProcess) -> None:
    _my_children().discard(process)


def _info(msg: str, *args: object) -> None:
    """Log on procframe's logger, if anything configured it (it imported the module)."""
    logsupport = sys.modules.get("procframe._core.logsupport")
    if logsupport is not None:
        logsupport.info(msg, *args)


_flushers: list[Callable[[], None]] = []
_after_children: list[Callable[[], None]] = []


def on_exit_before_services(callback: Callable[[], None]) -> None:
    """Run ``callback`` at exit after the children were stopped, before the services stop.

    For data this process still has to hand over (a queue's held items).
    """
    if callback not in _flushers:
        _flushers.append(callback)
    _install_exit_handler()


def on_exit_after_children(callback: Callable[[], None]) -> None:
    """Run ``callback`` at interpreter exit, after the children were stopped or joined.

    For services the children use (a fork server): they must outlive them.
    """
    if callback not in _after_children:
        _after_children.append(callback)
    _install_exit_handler()


_services: set[int] = set()


def add_service(pid: int) -> None:
    """``pid`` is a helper process this process keeps for its lifetime (a fork server).

    Its owner stops it at exit; a leak check does not count it.
    """
    _services.add(pid)


def remove_service(pid: int) -> None:
    """``pid`` is no longer a helper of this process (it was stopped)."""
    _services.discard(pid)


def service_pids() -> frozenset[int]:
    """The helper processes of this process (see :func:`add_service`)."""
    return frozenset(_services)


def forget_exit_callback(callback: Callable[[], None]) -> None:
    """Do not run ``callback`` at exit after all (it already ran)."""
    for callbacks in (_flushers, _after_children):
        if callback in callbacks:
            callbacks.remove(callback)


_finalizer_runner: Callable[[int | None], None] | None = None
_child_start_callbacks: list[Callable[[], None]] = []


def run_finalizers_at_exit(runner: Callable[[int | None], None]) -> None:
    """At exit, call ``runner(0)`` before the children are stopped, ``runner(None)`` after.

    The finalizers of :mod:`procframe.util` (``multiprocessing.util``'s order:
    priorities of 0 and more first, the others once the children have been
    joined and this process's held queue items handed over).
    """
    global _finalizer_runner
    _finalizer_runner = runner
    _install_exit_handler()


def on_child_start(callback: Callable[[], None]) -> None:
    """Call ``callback()`` in every new child OS process as it starts, before ``run()``.

    A forked child inherits the callbacks registered in its parent.
    """
    if callback not in _child_start_callbacks:
        _child_start_callbacks.append(callback)


def _install_exit_handler() -> None:
    global _exit_handler_installed
    if not _exit_handler_installed:
        import atexit

        atexit.register(_at_exit)
        _exit_handler_installed = True


def install_exit_handler() -> None:
    """Have procframe's exit work run at interpreter exit even if no child was started.

    Registered early, it runs late: after the exit handlers of pools and
    executors, which rely on that.
    """
    _install_exit_handler()


_exit_work_done = False
_first_at_exit: list[Callable[[], None]] = []
_early_exit_requested = False


def run_first_at_exit(step: Callable[[], None]) -> None:
    """Call ``step()`` at exit before the rest of procframe's exit work (finalizers, the
    children joined); steps registered later run first.  Pools and executors finish here."""
    if step not in _first_at_exit:
        _first_at_exit.append(step)
    _install_exit_handler()


def exit_work_before_threads_stop() -> None:
    """Run procframe's exit work as soon as the interpreter starts to shut down (the main
    thread has ended), before the standard library stops its thread pools, rather than
    among the ``atexit`` handlers.

    For a backend whose objects need such a pool to work (an asyncio client hands work to
    a ``concurrent.futures`` executor, which refuses new work once shutdown has begun).
    """
    global _early_exit_requested
    if not _early_exit_requested:
        _early_exit_requested = True
        import threading

        threading._register_atexit(_at_exit)  # type: ignore[attr-defined]


def _at_exit() -> None:
    global _exit_work_done
    if _exit_work_done:  # a spawned child does it before its interpreter's atexit
        return
    _exit_work_done = True
    finalizers = _finalizer_runner
    try:
        for step in reversed(_first_at_exit):
            try:
                step()
            except BaseException:  # as atexit does: report it, and go on with the rest
                import traceback

                traceback.print_exc()
        _info("process shutting down")
        if finalizers is not None:
            finalizers(0)
        _stop_children()
    finally:
        try:
            while _flushers:
                _flushers.pop(0)()
        finally:
            try:
                if finalizers is not None:
                    finalizers(None)
            finally:
                for callback in reversed(_after_children):
                    callback()


def _become_child(process: BaseProcess) -> None:
    """Make ``process`` the current process (called first thing in a new child)."""
    global _current_process, _parent_process, _children, _exit_work_done
    if _state.process is not None:  # forked by a thread that ran a process of its own
        _state.process = _state.parent = _state.children = _state.pid = None
        registry.adopt_in_thread(None)
        serializer_registry.adopt_in_thread(None)
    _parent_process = _ParentProcess(process._parent_name, process._parent_pid)
    _current_process = process
    _children = set()
    _services.clear()
    _exit_work_done = False
    _flushers.clear()
    _after_children.clear()
    process._launcher = None
    process._counter = itertools.count(1)
    serializer_registry.adopt(process._serializer_name())
    _detach_stdin()
    threading = sys.modules.get("threading")
    if threading is not None:  # a forked child's main thread still has its parent's id
        set_native_id = getattr(threading.main_thread(), "_set_native_id", None)
        if set_native_id is not None:
            set_native_id()
    lognames.name_records_by_process(current_process)
    for callback in _child_start_callbacks:
        callback()
    _info("child process calling self.run()")


_devnull: Any = None


def preopen_devnull() -> None:
    """Open the ``/dev/null`` a forked child will use as stdin, once, in the parent.

    Opening it in every child costs more than the rest of a forked child's start.
    """
    global _devnull
    if _devnull is None:
        _devnull = _open_devnull()


def _open_devnull() -> Any:
    # The descriptor outlives the file object, which never closes it: no
    # ResourceWarning at exit for a stdin nobody closes.
    return open(os.open(os.devnull, os.O_RDONLY), encoding="utf-8", closefd=False)


def _detach_stdin() -> None:
    """Give the child an empty stdin, so that it never competes with its parent for input."""
    if sys.stdin is not None:
        try:
            sys.stdin.close()
        except (OSError, ValueError):
            pass
    try:
        sys.stdin = _devnull if _devnull is not None else _open_devnull()
    except OSError:
        pass


def _stop_children() -> None:
    """Terminate daemonic children, then join the others (at exit, and at a child's end).

    Only children of a backend with ``posix_signals`` are signalled: a daemonic
    child of any other (a thread of this process) is left to end with this
    process, neither signalled nor waited for.
    """
    children = _my_children()
    daemons = [p for p in list(children) if p.daemon and p._launcher is not None]
    left = {p for p in daemons if not _backend_has(p._backend_name(), POSIX_SIGNALS, unknown=True)}
    signalled = [p for p in daemons if p not in left]
    for child in signalled:
        if child.is_alive():
            _info("calling terminate() for daemon %s", child.name)
            child.terminate()
    for child in signalled:
        child.join(DAEMON_STOP_GRACE)
        if child.is_alive():
            child.kill()
            child.join()
    for child in list(children):
        if child._launcher is not None and not child._serves_others and child not in left:
            _info("calling join() for process %s", child.name)
            child.join()


def _end_os_process() -> None:
    """What an interpreter does at exit: wait for its threads, run the exit handlers."""
    _join_threads()
    _at_exit()


def _backend_has(backend: str, capability: str, unknown: bool) -> bool:
    """True if ``backend`` declares ``capability``; ``unknown`` if it is declared no more."""
    info = registry.backends().get(backend)
    return unknown if info is None else info.has(capability)


def _join_threads() -> None:
    """Wait for the non-daemonic threads the child started, as an interpreter does at exit."""
    threading = sys.modules.get("threading")
    if threading is None:
        return
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon and thread is not threading.main_thread():
            thread.join()


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


class _BoundProcessClasses:
    """``ctx.Process`` classes, one per backend (and serializer, ``spawn+dill``, when the
    context names one), reachable by name so pickle finds them."""

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseProcess]] = {}
        self._lock = _thread.allocate_lock()

    def __getattr__(self, backend: str) -> type[BaseProcess]:
        if backend.startswith("__"):
            raise AttributeError(backend)
        with self._lock:
            cls = self._classes.get(backend)
            if cls is None:
                name, _, serializer = backend.partition("+")
                title = "".join(part.capitalize() for part in name.split("_"))
                with_serializer = f" with the {serializer!r} serializer" if serializer else ""
                cls = type(
                    f"{title}Process",
                    (Process,),
                    {
                        "_context_name": name,
                        "_context_serializer": serializer or None,
                        "__module__": __name__,
                        "__qualname__": f"_bound_classes.{backend}",
                        "__doc__": f"A Process started by the {name!r} backend{with_serializer}.",
                    },
                )
                self._classes[backend] = cls
            return cls


_bound_classes = _BoundProcessClasses()


def bound_process_class(backend: str, serializer: str | None = None) -> type[BaseProcess]:
    """The Process subclass whose instances always start under ``backend`` (and with
    ``serializer``, if not ``None``)."""
    cls: type[BaseProcess] = getattr(
        _bound_classes, backend if serializer is None else f"{backend}+{serializer}"
    )
    return cls
