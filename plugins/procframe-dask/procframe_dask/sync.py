"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier on the cluster.

A semaphore is a ``distributed.Queue`` of tokens: ``acquire`` takes one, ``release``
puts one back, so any process may release (as ``multiprocessing``'s), and a bounded
one is a queue whose ``maxsize`` is its value (a ``release`` that would exceed it
finds the queue full).  ``distributed.Lock`` and ``Semaphore`` are not used: their
leases belong to the instance that took them, so another process could not release.
An RLock is a Lock plus its owner (process and thread), which only the owner's
process needs to know.  Condition and Barrier have no Dask counterpart: their state
is a ``Variable`` guarded by a mutex of tokens, and waiters wake on queues or Events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from procframe_dask._objects import (
    NOW,
    dask_event,
    dask_queue,
    dask_variable,
    dumps,
    loads,
    new_name,
    refuse_unless_spawning,
    timeout_of,
)

T = TypeVar("T")
TOKEN = 1


class DaskSemaphore:
    """A semaphore whose tokens wait in a cluster queue; ``bound`` > 0 refuses to exceed it."""

    _kind = "semaphore"

    def __init__(
        self, value: int = 1, *, bound: int = 0, _name: str | None = None, _new: bool = False
    ) -> None:
        self._name = _name or new_name(self._kind)
        self._bound = bound
        self._queue = dask_queue(self._name, maxsize=max(bound, 0))
        if _name is None or _new:
            for _ in range(value):
                self._queue.put(TOKEN)

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return _rebuild, (type(self), self._name, self._bound)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        try:
            self._queue.get(timeout=timeout_of(block, timeout))
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        if self._bound == 0:
            self._queue.put(TOKEN)
            return
        try:
            self._queue.put(TOKEN, timeout=NOW)
        except TimeoutError:
            raise ValueError(f"{type(self).__name__} released too many times") from None

    def get_value(self) -> int:
        return int(self._queue.qsize())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._name}, value={self.get_value()})>"


def _rebuild(cls: type[Any], name: str, bound: int) -> Any:
    return cls(bound=bound, _name=name)


class DaskBoundedSemaphore(DaskSemaphore):
    """A semaphore whose ``release`` above its initial value raises ValueError."""

    _kind = "boundedsemaphore"

    def __init__(
        self, value: int = 1, *, bound: int = 0, _name: str | None = None, _new: bool = False
    ) -> None:
        # maxsize 0 means unbounded to a queue: a bound of 0 (-1 here) refuses every release
        super().__init__(value, bound=bound or value or -1, _name=_name, _new=_new)

    def release(self) -> None:
        if self._bound < 0:
            raise ValueError("BoundedSemaphore(0) released too many times")
        super().release()


class DaskLock(DaskSemaphore):
    """A non-recursive lock any process or thread may release (``multiprocessing.Lock``)."""

    _kind = "lock"

    def __init__(
        self, value: int = 1, *, bound: int = 1, _name: str | None = None, _new: bool = False
    ) -> None:
        super().__init__(1, bound=1, _name=_name, _new=_new)

    def release(self) -> None:
        try:
            super().release()
        except ValueError:
            raise ValueError("release of an unlocked lock") from None

    def locked(self) -> bool:
        return self.get_value() == 0


_owners: dict[str, list[Any]] = {}
"""RLock name -> [owner thread, depth] in this process (only an owner's process knows)."""
_owners_lock = threading.Lock()


class DaskRLock:
    """A recursive lock: a cluster Lock plus its owner (this process's thread holding it)."""

    def __init__(self, _name: str | None = None) -> None:
        self._lock = DaskLock(_name=_name)
        self._name = self._lock._name

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskRLock, (self._name,)

    def _state(self) -> list[Any]:
        with _owners_lock:
            return _owners.setdefault(self._name, [None, 0])

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        state = self._state()
        me = threading.get_ident()
        if state[0] == me:
            state[1] += 1
            return True
        if not self._lock.acquire(block, timeout):
            return False
        state[0], state[1] = me, 1
        return True

    def release(self) -> None:
        state = self._state()
        if state[0] != threading.get_ident() or state[1] == 0:
            raise AssertionError("attempt to release recursive lock not owned by thread")
        state[1] -= 1
        if state[1] == 0:
            state[0] = None
            self._lock.release()

    def _is_owned(self) -> bool:
        state = self._state()
        return state[0] == threading.get_ident() and state[1] > 0

    def _release_save(self) -> int:
        state = self._state()
        if state[0] != threading.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        depth = state[1]
        state[0], state[1] = None, 0
        self._lock.release()
        return depth

    def _acquire_restore(self, depth: int) -> None:
        self._lock.acquire()
        state = self._state()
        state[0], state[1] = threading.get_ident(), depth

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = self._state()
        return f"<DaskRLock({self._name}, owner={state[0]}, count={state[1]})>"


class _Guarded:
    """A pickled value in a Variable, read and changed under a mutex of tokens."""

    def __init__(self, name: str, initial: Any = None, *, new: bool) -> None:
        self.name = name
        self.mutex = DaskLock(_name=f"{name}-mutex", _new=new)
        self.variable = dask_variable(f"{name}-state")
        if new:
            self.variable.set(dumps(initial))

    def load(self) -> Any:
        return loads(self.variable.get(timeout=60))

    def save(self, value: Any) -> None:
        self.variable.set(dumps(value))


class DaskCondition:
    """``threading.Condition`` across processes: waiters queue up on the cluster, each on a
    queue of its own that ``notify`` puts a token on."""

    def __init__(self, lock: Any, _name: str | None = None) -> None:
        self._lock = lock
        self._name = _name or new_name("condition")
        self._waiters = _Guarded(self._name, [], new=_name is None)
        self.acquire = lock.acquire
        self.release = lock.release

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskCondition, (self._lock, self._name)

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        if hasattr(self._lock, "_is_owned"):
            return bool(self._lock._is_owned())
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        if hasattr(self._lock, "_release_save"):
            return self._lock._release_save()
        self._lock.release()
        return None

    def _acquire_restore(self, saved: Any) -> None:
        if hasattr(self._lock, "_acquire_restore"):
            self._lock._acquire_restore(saved)
        else:
            self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        me = new_name("waiter")
        inbox = dask_queue(me)
        with self._waiters.mutex:
            self._waiters.save([*self._waiters.load(), me])
        saved = self._release_save()
        try:
            try:
                inbox.get(timeout=timeout_of(True, timeout))
                return True
            except TimeoutError:
                with self._waiters.mutex:
                    waiters = self._waiters.load()
                    if me in waiters:
                        waiters.remove(me)
                        self._waiters.save(waiters)
                        return False
                # notified as it timed out: the token is there (put under the mutex)
                inbox.get(timeout=NOW)
                return True
        finally:
            inbox.close()
            self._acquire_restore(saved)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = time.monotonic() + waittime
                else:
                    waittime = endtime - time.monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._waiters.mutex:
            waiters = self._waiters.load()
            woken, rest = waiters[:n], waiters[n:]
            if woken:
                self._waiters.save(rest)
            for name in woken:
                dask_queue(name).put(TOKEN)

    def notify_all(self) -> None:
        self.notify(1 << 62)

    def __repr__(self) -> str:
        return f"<DaskCondition({self._name}, {self._lock!r})>"


class DaskEvent:
    """``multiprocessing.Event`` as a ``distributed.Event`` of the same name."""

    def __init__(self, _name: str | None = None) -> None:
        self._name = _name or new_name("event")
        self._event = dask_event(self._name)

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskEvent, (self._name,)

    def is_set(self) -> bool:
        return bool(self._event.is_set())

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None and timeout <= 0:
            return self.is_set()
        return bool(self._event.wait(timeout))

    def __repr__(self) -> str:
        return f"<DaskEvent({self._name}, set={self.is_set()})>"


class DaskBarrier:
    """``threading.Barrier`` across processes: its state (generation, arrivals, broken
    generations) in a guarded Variable; the parties of a generation wait on its Event."""

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        _name: str | None = None,
    ) -> None:
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._name = _name or new_name("barrier")
        initial = {"gen": 0, "count": 0, "broken": False, "broken_gens": []}
        self._state = _Guarded(self._name, initial, new=_name is None)

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskBarrier, (self._parties, self._action, self._timeout, self._name)

    def _event(self, gen: int) -> Any:
        return dask_event(f"{self._name}-gen{gen}")

    def _break(self, state: dict[str, Any]) -> None:
        """Break the current generation (under the mutex) and wake its parties."""
        state["broken"] = True
        state["broken_gens"].append(state["gen"])
        self._state.save(state)
        self._event(state["gen"]).set()

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            timeout = self._timeout
        with self._state.mutex:
            state = self._state.load()
            if state["broken"]:
                raise threading.BrokenBarrierError
            gen, index = state["gen"], state["count"]
            state["count"] += 1
            if state["count"] == self._parties:
                try:
                    if self._action is not None:
                        self._action()
                except BaseException:
                    self._break(state)
                    raise
                state["gen"], state["count"] = gen + 1, 0
                self._state.save(state)
                self._event(gen).set()
                return index
            self._state.save(state)
        woke = self._event(gen).wait(timeout)
        with self._state.mutex:
            state = self._state.load()
            if gen in state["broken_gens"]:
                raise threading.BrokenBarrierError
            if state["gen"] == gen and not woke:
                self._break(state)
                raise threading.BrokenBarrierError
        return index

    def reset(self) -> None:
        with self._state.mutex:
            state = self._state.load()
            if state["count"] or state["broken"]:
                if state["gen"] not in state["broken_gens"]:
                    state["broken_gens"].append(state["gen"])
                self._event(state["gen"]).set()
            state["gen"] += 1
            state["count"], state["broken"] = 0, False
            self._state.save(state)

    def abort(self) -> None:
        with self._state.mutex:
            self._break(self._state.load())

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        state = self._state.load()
        return 0 if state["broken"] else int(state["count"])

    @property
    def broken(self) -> bool:
        return bool(self._state.load()["broken"])

    def __repr__(self) -> str:
        return f"<DaskBarrier({self._name}, parties={self._parties})>"
