"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier on the cluster.

A semaphore is a ``distributed.Queue`` of tokens: ``acquire`` takes one, ``release``
puts one back, so any process may release (as ``multiprocessing``'s), and a bounded
one is a queue whose ``maxsize`` is its value (a ``release`` that would exceed it
finds the queue full).  ``distributed.Lock`` and ``Semaphore`` are not used: their
leases belong to the instance that took them, so another process could not release.
A Lock or RLock knows its owner (process and thread) in the owner's process only,
which is all a Condition asks.  Condition and Barrier have no Dask counterpart: their
state is a :class:`_Cell` (the one item of a cluster queue: taking it is holding it);
a Condition's waiters wake on an inbox queue of their own, a Barrier's parties on a
Variable per crossing.  Each waiter records its process's life key
(:func:`procframe_dask._objects.life_key`), so a waiter whose process was killed is
skipped by ``notify`` and breaks a Barrier, as a dead party does locally.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from procframe import LockNotOwnedError, backends
from procframe import synchronize as public
from procframe.util import Finalize
from procframe_dask import _agent, _sliced, cluster
from procframe_dask._objects import (
    NOW,
    dask_event,
    dask_queue,
    dask_variable,
    dead_among,
    dumps,
    life_key,
    loads,
    new_name,
    queue_put,
    refuse_unless_spawning,
    timeout_of,
)

T = TypeVar("T")
TOKEN = 1
HOLD_TIMEOUT = 60.0
"""Seconds to wait for a Condition's or Barrier's state, held by another process only for
the few round trips of a step: longer means its holder died holding it."""
PARTY_CHECK = 1.0
"""Seconds between a waiting Barrier party's looks for parties that died inside."""


def _int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return value


class _Tokens:
    """A semaphore whose tokens wait in a cluster queue; ``bound`` > 0 refuses to exceed it."""

    _kind = "semaphore"

    def __init__(self, value: int, bound: int, _name: str | None, _new: bool) -> None:
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
            # in slices: a process killed while it waits must not take the next release
            _sliced.get(self._queue, timeout_of(block, timeout))
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


class DaskSemaphore(_Tokens):
    """``multiprocessing.Semaphore``: its tokens wait in a cluster queue."""

    def __init__(
        self, value: int = 1, *, bound: int = 0, _name: str | None = None, _new: bool = False
    ) -> None:
        super().__init__(value, bound, _name, _new)


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


_holders: dict[str, int] = {}
"""Lock name -> the thread of this process that holds it (only the owner's process knows)."""


class DaskLock(_Tokens):
    """A non-recursive lock any process or thread may release (``multiprocessing.Lock``)."""

    _kind = "lock"

    def __init__(
        self, value: int = 1, *, bound: int = 1, _name: str | None = None, _new: bool = False
    ) -> None:
        super().__init__(1, 1, _name, _new)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if not super().acquire(block, timeout):
            return False
        _holders[self._name] = threading.get_ident()
        return True

    def release(self) -> None:
        try:
            super().release()
        except ValueError:
            raise ValueError("release of an unlocked lock") from None
        _holders.pop(self._name, None)

    def locked(self) -> bool:
        return self.get_value() == 0

    def _is_owned(self) -> bool:
        """True if this thread took the lock and no one here released it (as SemLock's)."""
        return _holders.get(self._name) == threading.get_ident()


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
        return bool(state[0] == threading.get_ident() and state[1] > 0)

    def _release_save(self) -> int:
        state = self._state()
        if state[0] != threading.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        depth = int(state[1])
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


class _Cell:
    """A value that one thread of one process holds at a time: the one item of a cluster
    queue of size 1.  ``with cell as value:`` takes it (one round trip), lets the body
    change it in place, and puts it back (one round trip): a mutex and its state in one.
    A Process on the cluster takes and puts through its agent, which gives the value
    back as it was taken if the process dies holding it (:mod:`procframe_dask._agent`)."""

    def __init__(self, name: str, initial: Any = None, *, new: bool) -> None:
        self.name = name
        self._queue = dask_queue(f"{name}-cell", maxsize=1)
        self._local = threading.local()
        if new:
            self._queue.put(dumps(initial))

    @property
    def held(self) -> Any:
        """The value this thread holds, or ``None``."""
        return getattr(self._local, "value", None)

    def __enter__(self) -> Any:
        agent = _agent.agent()  # a Process on the cluster: its agent takes it (see _agent)
        try:
            if agent is not None:
                data = agent.take(self._queue.name, HOLD_TIMEOUT)
                if data is None:
                    raise TimeoutError
            else:
                data = self._queue.get(timeout=HOLD_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(
                f"the state of {self.name} was not given back within {HOLD_TIMEOUT:g} s: "
                "the main program died while it changed it, or the cluster is overloaded"
            ) from None
        value = loads(data)
        self._local.value = value
        return value

    def __exit__(self, *exc: object) -> None:
        value, self._local.value = self.held, None
        if value is None:  # given back already (a step that let go of it failed)
            return
        agent = _agent.agent()
        if agent is not None:
            agent.give(self._queue.name, dumps(value))
        else:
            self._queue.put(dumps(value))

    def read(self) -> Any:
        """The value, taken and given back at once (or the one this thread holds)."""
        if self.held is not None:
            return self.held
        with self as value:
            return value


_inboxes = threading.local()
"""This thread's inbox queue: where a ``notify`` puts the token that wakes its wait."""


def _inbox() -> tuple[str, Any]:
    """This thread's inbox (its name and queue), made once per thread and client: a wait
    leaves it empty, so the next wait of the thread, on any Condition, reuses it."""
    client = cluster.client()
    found = getattr(_inboxes, "found", None)
    if found is None or found[0] is not client:
        name = new_name("inbox")
        found = (client, name, dask_queue(name))
        _inboxes.found = found
        # closed in procframe's exit work, while the client still works (it closes last)
        Finalize(None, _close_quietly, args=(found[2],), exitpriority=0)
    return found[1], found[2]


def _close_quietly(queue: Any) -> None:
    try:
        queue.close()
    except Exception:  # the cluster went first: nothing left to close
        pass


class DaskCondition:
    """``threading.Condition`` across processes: each waiter is named in the condition's
    state with its inbox and its process's life key; ``notify`` puts a token in the inboxes
    of the oldest live waiters (a waiter whose process died is dropped)."""

    def __init__(self, lock: Any, _name: str | None = None) -> None:
        self._lock = lock
        self._name = _name or new_name("condition")
        self._waiters = _Cell(self._name, [], new=_name is None)
        self.acquire = lock.acquire
        self.release = lock.release

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskCondition, (self._lock, self._name)

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        if hasattr(self._lock, "_is_owned"):
            return bool(self._lock._is_owned())
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _check_owned(self, what: str) -> None:
        if not self._is_owned():
            raise LockNotOwnedError(
                f"cannot {what} a Condition whose lock this thread does not hold"
            )

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
        seconds = timeout_of(True, timeout)
        self._check_owned("wait on")
        name, inbox = _inbox()
        me = [name, life_key()]
        with self._waiters as waiters:
            waiters.append(me)
        saved = self._release_save()
        try:
            try:
                inbox.get(timeout=seconds)
                return True
            except TimeoutError:
                with self._waiters as waiters:
                    if me in waiters:
                        waiters.remove(me)
                        return False
                # notified as it timed out: the token is there (put while notify held the state)
                inbox.get(timeout=HOLD_TIMEOUT)
                return True
        finally:
            self._acquire_restore(saved)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        waittime = backends.wait_timeout(timeout)
        endtime = None if waittime is None else time.monotonic() + waittime
        result = predicate()
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        self._check_owned("notify")
        _int("n", n)
        if n <= 0:
            return
        with self._waiters as waiters:
            if not waiters:
                return
            dead = dead_among(key for _, key in waiters)
            live = [waiter for waiter in waiters if waiter[1] not in dead]
            gone = {inbox for inbox, key in waiters if key in dead}
            for inbox, _ in live[:n]:
                queue_put(inbox, TOKEN)
            waiters[:] = live[n:]
        for inbox in gone:  # a dead process's inbox: no one else will close it
            _close_quietly(dask_queue(inbox))

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
        seconds = backends.wait_timeout(timeout)
        if seconds is not None and seconds <= 0:
            return self.is_set()
        return bool(self._event.wait(seconds))

    def __repr__(self) -> str:
        name = "Event" if type(self) is DaskEvent else type(self).__qualname__
        return f"<{name} at {id(self):#x} {'set' if self.is_set() else 'unset'}>"


FILLING, DRAINING, RESETTING, BROKEN = 0, 1, -1, -2
"""A Barrier's states, as ``threading.Barrier``'s ``_state``.  Its parties leave a
crossing through the crossing's outcome, with no draining: it drains only while the last
party runs the action.  A wait that finds it draining or resetting waits for that to
end, and breaks it when its timeout passes (as ``threading``'s does) or the party
inside died."""
_KEPT = 64
"""How many broken crossings a Barrier remembers (for a party that looks late)."""


class DaskBarrier:
    """``threading.Barrier`` across processes.

    Its state (``threading``'s ``_state`` and ``_count``, the crossing number, and
    the life keys of the parties inside) is a :class:`_Cell`, which is also its
    ``_cond``.  Each crossing ends with its outcome, ``"crossed"`` or ``"broken"``,
    set in a Variable of that crossing that its parties wait on.  A party checks the
    others are alive (one round trip) when it is the last to arrive, and every
    :data:`PARTY_CHECK` seconds while it waits: one killed inside breaks the barrier.
    """

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
        initial = {"state": FILLING, "count": 0, "gen": 0, "inside": [], "broken_gens": []}
        self._cond = _Cell(self._name, initial, new=_name is None)

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return DaskBarrier, (self._parties, self._action, self._timeout, self._name)

    def _outcome(self, gen: int) -> Any:
        return dask_variable(f"{self._name}-gen{gen}")

    def _end(self, state: dict[str, Any], outcome: str) -> None:
        """End the current crossing (its state held) with ``outcome``; wake its parties."""
        gen = state["gen"]
        if outcome == "broken":
            state["state"] = BROKEN
            state["broken_gens"] = [*state["broken_gens"][-_KEPT + 1 :], gen]
        self._outcome(gen).set(outcome)
        if gen >= 2:
            self._outcome(gen - 2).delete()  # its parties left long ago, or read the state

    def wait(self, timeout: float | None = None) -> int:
        seconds = backends.wait_timeout(self._timeout if timeout is None else timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        me = life_key()
        with self._cond as state:
            while state["state"] in (DRAINING, RESETTING):
                remaining = _remaining(deadline)
                if remaining == 0.0 or dead_among(state["inside"]):
                    self._end(state, "broken")
                    raise threading.BrokenBarrierError
                self._cond.__exit__()
                time.sleep(min(PARTY_CHECK, remaining or PARTY_CHECK))
                state = self._cond.__enter__()
            if state["state"] == BROKEN:
                raise threading.BrokenBarrierError
            gen, index = state["gen"], state["count"]
            state["count"] = index + 1
            state["inside"].append(me)
            last = index + 1 == self._parties
            if last:
                others = [key for key in state["inside"] if key != me]  # none: no round trip
                if dead_among(others):  # the dead do not count as arrived
                    self._end(state, "broken")
                    raise threading.BrokenBarrierError
                if self._action is None:
                    return self._cross(state, index)
                state["state"] = DRAINING  # while the action runs, with the state given back
        if last:
            return self._act(gen, index)
        return self._await(gen, index, deadline)

    def _cross(self, state: dict[str, Any], index: int) -> int:
        """Let the parties of the current crossing through (the state held)."""
        state["state"] = FILLING
        self._end(state, "crossed")
        state.update(gen=state["gen"] + 1, count=0, inside=[])
        return index

    def _act(self, gen: int, index: int) -> int:
        """Run the action as the last party of crossing ``gen``, then let everyone through;
        the state is not held meanwhile, so a long action keeps no one from it (two round
        trips more, only for a Barrier with an action)."""
        try:
            self._action()  # type: ignore[misc]
        except BaseException:
            with self._cond as state:
                if state["gen"] == gen and state["state"] != BROKEN:
                    self._end(state, "broken")
            raise
        with self._cond as state:
            if state["gen"] != gen or state["state"] != DRAINING:
                raise threading.BrokenBarrierError  # reset, aborted or broken meanwhile
            return self._cross(state, index)

    def _await(self, gen: int, index: int, deadline: float | None) -> int:
        """Wait for crossing ``gen`` to end; look for dead parties now and then."""
        outcome = self._outcome(gen)
        while True:
            remaining = _remaining(deadline)
            if remaining == 0.0:
                return self._settle(gen, index, timed_out=True)
            try:
                ended = outcome.get(timeout=min(remaining or PARTY_CHECK, PARTY_CHECK))
            except TimeoutError:
                settled = self._settle(gen, index, timed_out=False)
                if settled >= 0:
                    return settled
                continue
            if ended == "broken":
                raise threading.BrokenBarrierError
            return index

    def _settle(self, gen: int, index: int, *, timed_out: bool) -> int:
        """What crossing ``gen`` came to, read from the state: ``index`` if it crossed,
        BrokenBarrierError if it broke (or this party's time ran out, or a party inside
        died), -1 if it still fills."""
        with self._cond as state:
            if state["gen"] != gen:
                if gen in state["broken_gens"]:
                    raise threading.BrokenBarrierError
                return index
            if state["state"] == BROKEN:
                raise threading.BrokenBarrierError
            if timed_out or dead_among(state["inside"]):
                self._end(state, "broken")
                raise threading.BrokenBarrierError
            return -1

    def reset(self) -> None:
        with self._cond as state:
            if state["count"] and state["state"] != BROKEN:
                self._end(state, "broken")  # the parties inside raise
            state.update(state=FILLING, gen=state["gen"] + 1, count=0, inside=[])

    def abort(self) -> None:
        with self._cond as state:
            if state["state"] != BROKEN:
                self._end(state, "broken")

    @property
    def _state(self) -> int:
        return int(self._cond.read()["state"])

    @_state.setter
    def _state(self, value: int) -> None:
        self._change(state=value)

    @property
    def _count(self) -> int:
        return int(self._cond.read()["count"])

    @_count.setter
    def _count(self, value: int) -> None:
        self._change(count=value)

    def _change(self, **values: Any) -> None:
        if self._cond.held is not None:
            self._cond.held.update(values)
        else:
            with self._cond as state:
                state.update(values)

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        state = self._cond.read()
        return int(state["count"]) if state["state"] == FILLING else 0

    @property
    def broken(self) -> bool:
        return bool(self._cond.read()["state"] == BROKEN)

    def __repr__(self) -> str:
        return f"<DaskBarrier({self._name}, parties={self._parties})>"


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


for _public_class, _implementation in (
    (public.Lock, DaskLock),
    (public.RLock, DaskRLock),
    (public.Semaphore, DaskSemaphore),
    (public.BoundedSemaphore, DaskBoundedSemaphore),
    (public.Condition, DaskCondition),
    (public.Event, DaskEvent),
    (public.Barrier, DaskBarrier),
):
    _public_class.register(_implementation)
