"""The typed ``Manager()`` API of the standard library, type-checked like common_api.py.

It waits for the managers' generic proxies (``DictProxy[K, V]``,
``ListProxy[T]``, ``SyncManager`` returned by ``with``): tests/test_typing.py
expects it to fail until then.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import procframe as mp
from procframe.managers import DictProxy, ListProxy

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:

    def assert_type(value, _type):
        return value


def main() -> int:
    with mp.Manager() as manager:
        d: DictProxy[str, int] = manager.dict()
        d["a"] = 1
        assert_type(d["a"], int)
        assert_type(d.get("b"), int | None)
        items: ListProxy[int] = manager.list([1, 2])
        items.append(3)
        assert_type(items[0], int)
        assert sum(items) == 6 and dict(d) == {"a": 1}
        lock = manager.Lock()
        with lock:
            pass
        q = manager.Queue()
        q.put(1)
    return 0


def mistakes(d: DictProxy[str, int], items: ListProxy[int]) -> None:
    """Never called: each line is a mistake that the types catch."""
    d["a"] = "one"  # type: ignore[assignment]
    items.append("x")  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
