"""The engine of a thread pool: worker threads taking tasks from one queue, nothing pickled."""

from __future__ import annotations

import itertools
import queue
import threading
import time

from procframe._core import registry
from procframe.pool._errors import BrokenPoolError, TaskAbortedError
from procframe.pool._process_core import CLOSED, RUNNING, TERMINATED
from procframe.pool._worker import execute

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.pool._process_core import Call


class ThreadCore:
    """Threads, the task queue, and the state of one thread pool."""

    def __init__(
        self,
        processes: int,
        initializer: Any,
        initargs: tuple[Any, ...],
        maxtasksperchild: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.processes = processes
        self.state = RUNNING
        self.task_timeout: float | None = None
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasksperchild
        self._backend = backend
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._feeders = 0
        self._stopping = False
        self._broken: BaseException | None = None
        self._numbers = itertools.count(1)
        self._threads = [self._new_thread(slot) for slot in range(processes)]
        for thread in self._threads:
            thread.start()

    def _new_thread(self, slot: int) -> threading.Thread:
        return threading.Thread(
            target=self._work,
            args=(slot,),
            name=f"ThreadPoolWorker-{next(self._numbers)}",
            daemon=True,
        )

    def submit(self, calls: list[Call], timeout: float | None) -> None:
        """Queue (job, index, kind, call) tasks."""
        with self._lock:
            refused = self.state == TERMINATED or self._broken is not None
        if refused:
            error = self._refusal()
            for job, index, _kind, _call in calls:
                job._set(index, False, error)
            return
        for call in calls:
            self._queue.put(call)

    def _refusal(self) -> BrokenPoolError:
        if self._broken is not None:
            return BrokenPoolError.because(self._broken)
        return BrokenPoolError("the pool was terminated before this task ended")

    def feeder_started(self) -> None:
        with self._lock:
            self._feeders += 1

    def feeder_done(self) -> None:
        with self._lock:
            self._feeders -= 1
        self._stop_when_idle()

    def _work(self, slot: int) -> None:
        if self._backend is not None:  # the worker's default backend is its pool's
            registry.adopt_in_thread(self._backend)
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as e:
                with self._lock:
                    if self._broken is None:
                        self._broken = e
                self._fail_queued()
                return
        done = 0
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, index, kind, call = item
            if self.state == TERMINATED or self._broken is not None:
                job._set(index, False, self._refusal())
                continue
            try:
                value, ok = execute(kind, call[0], call[1:]), True
            except Exception as e:
                value, ok = e, False
            except BaseException as e:
                value, ok = TaskAbortedError(f"the task raised {e!r}"), False
                value.__cause__ = e
            job._set(index, ok, value)
            del item, job, call, value  # a retired thread must not keep the last task alive
            done += 1
            if done == self._maxtasks:
                self._retire(slot)
                return

    def _retire(self, slot: int) -> None:
        """Hand this thread's place to a new one (``maxtasksperchild``); it takes the same
        share of the stop signals, so the count of threads taking tasks never changes."""
        with self._lock:  # started before join() can see it
            thread = self._threads[slot] = self._new_thread(slot)
            thread.start()

    def _fail_queued(self) -> None:
        error = self._refusal()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._queue.put(None)
                return
            item[0]._set(item[1], False, error)

    def close(self) -> None:
        with self._lock:
            if self.state == RUNNING:
                self.state = CLOSED
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        """Once closed and fed, tell each thread to finish the queue and stop."""
        with self._lock:
            if self.state == RUNNING or self._feeders or self._stopping:
                return
            self._stopping = True
        for _ in self._threads:
            self._queue.put(None)

    def terminate(self, wait: bool = True) -> None:
        """Fail the queued tasks and stop the threads once their running task ends.

        With ``wait``, until then: a thread cannot be stopped in the middle of a task.
        """
        with self._lock:
            self.state = TERMINATED
        self._fail_queued()
        self._stop_when_idle()
        if wait:
            self.join()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the threads (those that replaced retired ones too), but not for the caller."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = threading.current_thread()
        while True:
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                if thread is not current:
                    thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            with self._lock:
                if threads == self._threads:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                return
