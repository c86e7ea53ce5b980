"""What the drop-in managers tests' children and servers import by name.

A child changes a managed container between two ``next`` calls of an
iterator in its parent, and tells the parent through a channel the manager
never sees (an Event of the context), so the parent's next ``next`` must see
the change even though the iterator could not have heard of it.
"""

from __future__ import annotations

from typing import Any

from procframe.managers import BaseManager, DictProxy

PATIENCE = 60.0
"""Seconds anything that should happen at once may take."""


def change_after(go: Any, done: Any, change: Any, *args: Any) -> None:
    """Wait for ``go``, run ``change(*args)``, then set ``done``."""
    if not go.wait(PATIENCE):
        raise TimeoutError("the parent never said go")
    change(*args)
    done.set()


def set_item(container: Any, key: Any, value: Any) -> None:
    """``container[key] = value``."""
    container[key] = value


def put_to_dict(shared: Any, key: str, value: Any) -> None:
    """``shared[key] = value`` (a child given a dict proxy under the xmlrpclib serializer)."""
    shared[key] = value


def new_dict() -> dict[Any, Any]:
    """A new dict (a registered callable)."""
    return {}


class DictOnlyManager(BaseManager):
    """A manager that registers a dict with ``DictProxy`` and nothing else (no "Iterator")."""


DictOnlyManager.register("dict", new_dict, DictProxy)


CLASSES_OF_THE_MAIN_SCRIPT = """\
import sys

from procframe.managers import BaseManager, BaseProxy


class A:
    def foo(self):
        return 'you called A.foo()'

    def bar(self):
        return 'you called A.bar()'

    def _baz(self):
        return 'you called A._baz()'


class B:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, B) and other.x == self.x


def baz():
    for i in range(10):
        yield i * i


def make_b(x):
    return B(x)


class GeneratorProxy(BaseProxy):
    _exposed_ = ['__next__']

    def __iter__(self):
        return self

    def __next__(self):
        return self._callmethod('__next__')


class MyManager(BaseManager):
    pass


MyManager.register('Foo1', A)
MyManager.register('Foo2', A, exposed=('bar', '_baz'))
MyManager.register('baz', baz, proxytype=GeneratorProxy)
MyManager.register('b', make_b)


if __name__ == '__main__':
    with MyManager() as manager:
        f1 = manager.Foo1()
        print(f1.foo(), f1.bar(), sep='|')
        f2 = manager.Foo2()
        print(f2._callmethod('_baz'))
        it = manager.baz()
        print(type(it).__name__, [i for i in it])
        value = manager.b(3)._getvalue()
        print(type(value) is B, value == B(3))
    print(sys.modules['__mp_main__'] is sys.modules['__main__'])
"""
"""The manager example of the multiprocessing documentation (what ``A``'s methods print,
returned), with a value of a main-script class sent back; run as a script."""


A_CHILD_SENDS_A_MAIN_SCRIPT_OBJECT = """\
import procframe


class Point:
    def __init__(self, x):
        self.x = x


def send(q):
    q.put(Point(3))


if __name__ == '__main__':
    q = procframe.Queue()
    p = procframe.Process(target=send, args=(q,))
    p.start()
    got = q.get(timeout=60)
    p.join(60)
    print(type(got) is Point, got.x)
"""
"""A child puts an object of a class of the main script on a Queue; run as a script."""
