"""Children and subclasses of the drop-in names' tests (procframe.queues, procframe.synchronize)."""

from __future__ import annotations

from typing import Any

import procframe
import procframe.queues
import procframe.synchronize
from procframe.testing.helpers.targets import report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe.context import Context


class SizedQueue(procframe.queues.Queue[object]):
    """A Queue subclass as programs write them: the public class, built with a ``ctx``."""

    def __init__(self, maxsize: int = 0, *, ctx: Context) -> None:
        super().__init__(maxsize, ctx=ctx)

    def size(self) -> int:
        """What the subclass adds."""
        return self.qsize()


class CountingLock(procframe.synchronize.Lock):
    """A Lock subclass that counts its acquisitions through ``with``."""

    def __init__(self, *, ctx: Context) -> None:
        super().__init__(ctx=ctx)
        self.entered = 0

    def __enter__(self) -> bool:
        self.entered += 1
        return super().__enter__()


def put_from_a_subclass(queue: SizedQueue, count: int, path: str) -> None:
    """Put ``0..count-1`` on ``queue``; report the queue's class as the child sees it."""
    for item in range(count):
        queue.put(item)
    report(path, {"class": type(queue).__qualname__, "is_public": _is_public_queue(queue)})


def _is_public_queue(queue: Any) -> bool:
    return isinstance(queue, procframe.queues.Queue)
