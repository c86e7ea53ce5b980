"""The objects a SyncManager serves and the proxies that stand for them."""

from __future__ import annotations

import _thread
import array
import queue
import threading
import time
import types
from collections import deque

from procframe.managers._ownership import CallerRLock
from procframe.managers._proxy import BaseProxy, MakeProxyType
from procframe.managers._server import caller_gone
from procframe.managers._workers import step_aside

# -- objects made in the server ---------------------------------------------------

WAIT_SLICE = 0.1
"""Seconds a blocking method waits before it checks that its caller is still connected."""


def _patiently(attempt: Any, timeout: float | None, give_back: Any = None) -> Any:
    """``attempt(seconds)`` until it succeeds (not None) or the timeout passes; None then.

    A caller that hung up in the meantime (killed, or interrupted by Ctrl-C)
    gets nothing: what it took is given back with ``give_back`` and
    ``ConnectionAbortedError`` ends the call, so no item or lock goes to a
    client that can never use it.
    """
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    step_aside()  # its thread waits: others run the pool's requests meanwhile
    while True:
        wait = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        outcome = attempt(max(wait, 0.0))
        gone = caller_gone()
        if outcome is not None:
            if not gone:
                return outcome
            if give_back is not None:
                give_back(outcome)
        if gone:
            raise ConnectionAbortedError("the caller hung up while it waited")
        if deadline is not None and time.monotonic() >= deadline:
            return None


class Queue(queue.Queue):  # type: ignore[type-arg]
    """``queue.Queue`` whose blocking ``get``/``put`` give up when their caller is gone."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        try:
            return queue.Queue.get(self, False)  # the common case, without a slice
        except queue.Empty:
            if not block:
                raise
        got = _patiently(self._try_get, timeout, self._give_back)
        if got is None:
            raise queue.Empty
        return got[0]

    def _try_get(self, wait: float) -> tuple[Any] | None:
        try:
            return (queue.Queue.get(self, True, wait),)
        except queue.Empty:
            return None

    def _give_back(self, got: tuple[Any]) -> None:
        with self.not_empty:
            self.queue.appendleft(got[0])
            self.not_empty.notify()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not block or not self.maxsize:
            queue.Queue.put(self, item, False)
        elif _patiently(lambda wait: self._try_put(item, wait), timeout) is None:
            raise queue.Full

    def _try_put(self, item: Any, wait: float) -> bool | None:
        try:
            queue.Queue.put(self, item, True, wait)
        except queue.Full:
            return None
        return True


class _Acquirer:
    """A lock or semaphore whose blocking ``acquire`` gives up when its caller is gone."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if timeout is not None and timeout >= 0 and not blocking:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if self._inner.acquire(False):  # the common case, without a slice
            return True
        if not blocking:
            return False
        return _patiently(self._try, timeout, self._give_back) is not None

    def _try(self, wait: float) -> bool | None:
        return True if self._inner.acquire(True, wait) else None

    def _give_back(self, acquired: bool) -> None:
        self._inner.release()

    def release(self, *args: Any) -> None:
        self._inner.release(*args)

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self._inner.release()

    def __repr__(self) -> str:
        return repr(self._inner)


def Lock() -> _Acquirer:
    return _Acquirer(threading.Lock())


def RLock() -> _Acquirer:
    return _Acquirer(CallerRLock())


def Semaphore(value: int = 1) -> _Acquirer:
    return _Acquirer(threading.Semaphore(value))


def BoundedSemaphore(value: int = 1) -> _Acquirer:
    return _Acquirer(threading.BoundedSemaphore(value))


class Condition:
    """A condition variable whose waits and acquires give up when their caller is gone.

    A waiter that hung up neither keeps the lock nor takes a notification: one
    it was given passes to the next waiter.  ``lock`` is a Lock or RLock made by
    this server (or a proxy of one); a new RLock if None.

    With its own lock, a notified waiter is woken when the notifier releases
    the lock rather than at once, so it wakes once, to a free lock, instead of
    waking to find the lock held and sleeping again.
    """

    def __init__(self, lock: Any = None) -> None:
        if isinstance(lock, BaseProxy):  # a proxy of this server's own lock: use the lock
            lock = lock._referent()
        self._private = lock is None  # only this condition's methods release it
        if lock is None:
            lock = RLock()
        elif not isinstance(lock, _Acquirer):
            lock = _Acquirer(lock)
        self._lock: _Acquirer = lock
        self._waiters: deque[Any] = deque()
        self._notified: list[Any] = []
        """Waiters notified while the lock is held: woken once it is released."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        if self._notified and self._owned():  # (a non-owner's release raises below)
            notified = self._take_notified()
            self._lock.release()
            _wake(notified)
        else:
            self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take_notified(self) -> list[Any]:
        """The waiters to wake once the lock is released (taken while it is held)."""
        notified = self._notified
        if notified:
            self._notified = []
        return notified

    def _owned(self) -> bool:
        """True if this thread holds the lock (for a plain Lock, which cannot tell: if held)."""
        inner = self._lock._inner
        return bool(inner._is_owned() if hasattr(inner, "_is_owned") else inner.locked())

    def _check_owned(self, what: str) -> None:
        if not self._owned():
            raise RuntimeError(f"cannot {what} on un-acquired lock")

    def wait(self, timeout: float | None = None) -> bool:
        self._check_owned("wait")
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        notified_before = self._take_notified()
        levels = self._release_all()
        _wake(notified_before)
        try:
            notified = _patiently(lambda wait: waiter.acquire(True, wait) or None, timeout)
        except ConnectionAbortedError:  # the caller is gone: it does not take the lock back
            self._give_up(waiter)
            raise
        if notified is None:
            try:
                self._waiters.remove(waiter)
            except ValueError:  # notified as it timed out: threading.Condition drops it too
                pass
        self._take_back(levels)
        return notified is not None

    def _release_all(self) -> int:
        """Release the lock, every level of an RLock; how many levels."""
        inner = self._lock._inner
        if hasattr(inner, "_release_save"):
            return int(inner._release_save()[0])
        inner.release()
        return 1

    def _take_back(self, levels: int) -> None:
        if not self._lock.acquire():
            raise RuntimeError("the condition's lock could not be taken back")
        for _ in range(levels - 1):
            self._lock._inner.acquire()

    def _give_up(self, waiter: Any) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:  # it had been notified: pass that on
            self._notify_one()

    def notify(self, n: int = 1) -> None:
        self._check_owned("notify")
        for _ in range(n):
            if not self._notify_one(later=self._private):
                return

    def _notify_one(self, later: bool = False) -> bool:
        """Wake one waiter, or (``later``) once the lock is released; False if none waits."""
        try:
            waiter = self._waiters.popleft()
        except IndexError:
            return False
        if later:
            self._notified.append(waiter)
        else:
            waiter.release()
        return True

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r}, {len(self._waiters)} waiting)>"


def _wake(waiters: list[Any]) -> None:
    for waiter in waiters:
        waiter.release()


class Event:
    """``threading.Event`` whose ``wait`` gives up when its caller is gone."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if self._event.is_set():
            return True
        return _patiently(lambda wait: self._event.wait(wait) or None, timeout) is not None

    def __repr__(self) -> str:
        return f"<Event: {'set' if self._event.is_set() else 'unset'}>"


class Namespace:
    """A bag of attributes; its repr lists the public ones."""

    def __init__(self, **kwds: Any) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"Namespace({shown})"


class Value:
    """A value with ``get``/``set`` (the ``lock`` argument is accepted and ignored: a call
    runs whole in the server)."""

    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self._typecode = typecode
        self._value = value

    def get(self) -> Any:
        return self._value

    def set(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._typecode!r}, {self._value!r})"

    value = property(get, set)


def Array(typecode: str, sequence: Any, lock: Any = True) -> array.array[Any]:
    """An ``array.array`` (``lock`` is accepted and ignored, as for :class:`Value`)."""
    return array.array(typecode, sequence)


# -- proxies ------------------------------------------------------------------------


class IteratorProxy(BaseProxy):
    """An iterator (or generator) in the server."""

    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self) -> IteratorProxy:
        return self

    def __next__(self, *args: Any) -> Any:
        return self._callmethod("__next__", args)

    def send(self, *args: Any) -> Any:
        return self._callmethod("send", args)

    def throw(self, *args: Any) -> Any:
        return self._callmethod("throw", args)

    def close(self, *args: Any) -> Any:
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    """A Lock, RLock or semaphore in the server; a context manager."""

    _exposed_: tuple[str, ...] = ("acquire", "release")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod("acquire", args)  # type: ignore[no-any-return]

    def release(self) -> None:
        self._callmethod("release")

    def __enter__(self) -> bool:
        return self._callmethod("acquire")  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    """A Condition in the server; ``wait_for`` evaluates its predicate here."""

    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout: float | None = None) -> bool:
        return self._callmethod("wait", (timeout,))  # type: ignore[no-any-return]

    def notify(self, n: int = 1) -> None:
        self._callmethod("notify", (n,))

    def notify_all(self) -> None:
        self._callmethod("notify_all")

    def wait_for(self, predicate: Any, timeout: float | None = None) -> Any:
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if deadline is not None:
                waittime = deadline - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    """An Event in the server."""

    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self) -> bool:
        return self._callmethod("is_set")  # type: ignore[no-any-return]

    def set(self) -> None:
        self._callmethod("set")

    def clear(self) -> None:
        self._callmethod("clear")

    def wait(self, timeout: float | None = None) -> bool:
        return self._callmethod("wait", (timeout,))  # type: ignore[no-any-return]


class BarrierProxy(BaseProxy):
    """A Barrier in the server."""

    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout: float | None = None) -> int:
        return self._callmethod("wait", (timeout,))  # type: ignore[no-any-return]

    def abort(self) -> None:
        self._callmethod("abort")

    def reset(self) -> None:
        self._callmethod("reset")

    @property
    def parties(self) -> int:
        return self._callmethod("__getattribute__", ("parties",))  # type: ignore[no-any-return]

    @property
    def n_waiting(self) -> int:
        return self._callmethod("__getattribute__", ("n_waiting",))  # type: ignore[no-any-return]

    @property
    def broken(self) -> bool:
        return self._callmethod("__getattribute__", ("broken",))  # type: ignore[no-any-return]


class NamespaceProxy(BaseProxy):
    """A Namespace in the server: attribute access goes there (names with ``_`` stay here)."""

    _exposed_ = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key: str) -> Any:
        if key[0] == "_":
            return object.__getattribute__(self, key)
        return object.__getattribute__(self, "_callmethod")("__getattribute__", (key,))

    def __setattr__(self, key: str, value: Any) -> None:
        if key[0] == "_":
            object.__setattr__(self, key, value)
            return
        object.__getattribute__(self, "_callmethod")("__setattr__", (key, value))

    def __delattr__(self, key: str) -> None:
        if key[0] == "_":
            object.__delattr__(self, key)
            return
        object.__getattribute__(self, "_callmethod")("__delattr__", (key,))


class _Value(BaseProxy):
    _exposed_ = ("get", "set")

    def get(self) -> Any:
        return self._callmethod("get")

    def set(self, value: Any) -> None:
        self._callmethod("set", (value,))


_LIST_METHODS = (
    "__add__", "__contains__", "__delitem__", "__getitem__", "__len__", "__mul__",
    "__reversed__", "__rmul__", "__setitem__", "append", "copy", "count", "extend",
    "index", "insert", "pop", "remove", "reverse", "sort", "__imul__",
)  # fmt: skip

_DICT_METHODS = (
    "__contains__", "__delitem__", "__getitem__", "__iter__", "__len__", "__setitem__",
    "clear", "copy", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values",
)  # fmt: skip


def _referent_repr(proxy: BaseProxy) -> str:
    """The repr of the list or dict ``proxy`` stands for (a nested one's shows its contents);
    the proxy's own description if the server cannot answer."""
    try:
        return proxy._callmethod("__repr__")  # type: ignore[no-any-return]
    except Exception:
        return BaseProxy.__repr__(proxy)


TYPE_CHECKING = False
if TYPE_CHECKING:  # generic, as typeshed declares them; the classes themselves are below
    from collections.abc import Callable, Iterable, Iterator, MutableMapping, MutableSequence
    from typing import Any, Generic, SupportsIndex, TypeVar, overload

    from typing_extensions import Self

    _T = TypeVar("_T")
    _KT = TypeVar("_KT")
    _VT = TypeVar("_VT")

    class ValueProxy(_Value, Generic[_T]):
        def get(self) -> _T: ...
        def set(self, value: _T) -> None: ...

        value: _T

    class BaseListProxy(BaseProxy, MutableSequence[_T]):
        def __len__(self) -> int: ...
        def __add__(self, x: list[_T], /) -> list[_T]: ...
        def __delitem__(self, i: SupportsIndex | slice, /) -> None: ...
        @overload
        def __getitem__(self, i: SupportsIndex, /) -> _T: ...
        @overload
        def __getitem__(self, s: slice, /) -> list[_T]: ...
        def __getitem__(self, i: SupportsIndex | slice, /) -> _T | list[_T]: ...
        @overload
        def __setitem__(self, i: SupportsIndex, o: _T, /) -> None: ...
        @overload
        def __setitem__(self, s: slice, o: Iterable[_T], /) -> None: ...
        def __setitem__(self, i: SupportsIndex | slice, o: Any, /) -> None: ...
        def __mul__(self, n: SupportsIndex, /) -> list[_T]: ...
        def __rmul__(self, n: SupportsIndex, /) -> list[_T]: ...
        def __imul__(self, value: SupportsIndex, /) -> Self: ...
        def __reversed__(self) -> Iterator[_T]: ...
        def append(self, object: _T, /) -> None: ...
        def extend(self, iterable: Iterable[_T], /) -> None: ...
        def pop(self, index: SupportsIndex = -1, /) -> _T: ...
        def index(
            self, value: _T, start: SupportsIndex = 0, stop: SupportsIndex = -1, /
        ) -> int: ...
        def count(self, value: _T, /) -> int: ...
        def insert(self, index: SupportsIndex, object: _T, /) -> None: ...
        def remove(self, value: _T, /) -> None: ...
        def copy(self) -> list[_T]: ...
        def sort(
            self, *, key: Callable[[_T], Any] | None = None, reverse: bool = False
        ) -> None: ...

    class ListProxy(BaseListProxy[_T]):
        def __iadd__(self, value: Iterable[_T], /) -> Self: ...  # type: ignore[override]

    class DictProxy(BaseProxy, MutableMapping[_KT, _VT]):
        def __len__(self) -> int: ...
        def __getitem__(self, key: _KT, /) -> _VT: ...
        def __setitem__(self, key: _KT, value: _VT, /) -> None: ...
        def __delitem__(self, key: _KT, /) -> None: ...
        def __iter__(self) -> Iterator[_KT]: ...
        def copy(self) -> dict[_KT, _VT]: ...
        @overload
        def get(self, key: _KT, /) -> _VT | None: ...
        @overload
        def get(self, key: _KT, default: _VT, /) -> _VT: ...
        @overload
        def get(self, key: _KT, default: _T, /) -> _VT | _T: ...
        def get(self, key: _KT, default: Any = None, /) -> Any: ...
        @overload
        def pop(self, key: _KT, /) -> _VT: ...
        @overload
        def pop(self, key: _KT, default: _VT, /) -> _VT: ...
        @overload
        def pop(self, key: _KT, default: _T, /) -> _VT | _T: ...
        def pop(self, key: _KT, default: Any = None, /) -> Any: ...
        def keys(self) -> list[_KT]: ...  # type: ignore[override]
        def items(self) -> list[tuple[_KT, _VT]]: ...  # type: ignore[override]
        def values(self) -> list[_VT]: ...  # type: ignore[override]

else:
    _generic = classmethod(types.GenericAlias)
    """``__class_getitem__`` of a generic proxy type: ``DictProxy[str, int]`` at run time."""

    class ValueProxy(_Value):
        """A Value in the server: ``.value``, ``get()``, ``set()``; ``ValueProxy[int]`` types it."""

        value = property(_Value.get, _Value.set)
        __class_getitem__ = _generic

    BaseListProxy = MakeProxyType("BaseListProxy", _LIST_METHODS)
    BaseListProxy.__class_getitem__ = _generic

    class ListProxy(BaseListProxy):
        """A list in the server; ``str`` and ``repr`` show it; generic (``ListProxy[int]``).

        Iterating reads the server's list by index, ``lst[0]``, ``lst[1]``, ... until
        ``IndexError``, one round trip per item (Python's sequence iteration, as the
        standard library's): each ``next`` sees the list as it is then, changes made
        since ``iter()`` included.  ``lst[:]`` reads a copy in one round trip.
        """

        def __iadd__(self, value):
            self._callmethod("extend", (value,))
            return self

        def __imul__(self, value):
            self._callmethod("__imul__", (value,))
            return self

        __repr__ = _referent_repr

    class DictProxy(MakeProxyType("BaseDictProxy", _DICT_METHODS)):
        """A dict in the server; ``str`` and ``repr`` show it; generic (``DictProxy[str, int]``).

        Iterating iterates over the dict in the server (an iterator there, by
        proxy, as the standard library's): one round trip per key, and
        ``RuntimeError`` if the dict changes size meanwhile.  ``d.keys()`` and
        ``d.copy()`` read a copy in one round trip.
        """

        _method_to_typeid_ = {"__iter__": "Iterator"}

        def __iter__(self):
            return self._callmethod("__iter__")

        __repr__ = _referent_repr
        __class_getitem__ = _generic


ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))


BasePoolProxy = MakeProxyType(
    "PoolProxy",
    (
        "apply", "apply_async", "close", "imap", "imap_unordered", "join", "map",
        "map_async", "starmap", "starmap_async", "terminate",
    ),
)  # fmt: skip
BasePoolProxy._method_to_typeid_ = {
    "apply_async": "AsyncResult",
    "map_async": "AsyncResult",
    "starmap_async": "AsyncResult",
    "imap": "Iterator",
    "imap_unordered": "Iterator",
}


class PoolProxy(BasePoolProxy):  # type: ignore[valid-type,misc]
    """A Pool in the server; leaving its ``with`` block terminates it."""

    def __enter__(self) -> PoolProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()
