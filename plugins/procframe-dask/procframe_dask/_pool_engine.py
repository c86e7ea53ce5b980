"""The engine of a pool on the cluster: tasks submitted to Dask, outcomes delivered as they end.

Each task (an apply, or one chunk of a map) is one Dask task
(:func:`procframe_dask._pool_task.run`).  A Dask done-callback hands each
ended future to the pool's own thread, which gathers the results of every
future that has ended since its last look in one ``client.gather`` and
delivers them to their jobs with ``job._set(index, ok, value)`` (the
protocol of :mod:`procframe.pool`'s result classes): callbacks run there.
"""

from __future__ import annotations

import itertools
import pickle
import queue
import threading
import uuid
from typing import Any

from procframe.pool import BrokenPoolError
from procframe_dask import _pool_outcomes as outcomes
from procframe_dask import _pool_task as task

RUNNING, CLOSED, TERMINATED = "RUN", "CLOSE", "TERMINATE"


class Engine:
    """The Dask futures of one pool, and the thread that delivers their outcomes."""

    def __init__(self, client: Any, processes: int, init: bytes | None) -> None:
        self.client = client
        self.processes = processes
        self.state = RUNNING
        self.task_timeout: float | None = None
        self._key = f"procframe-pool-{uuid.uuid4().hex}"
        self._init = init
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: dict[str, tuple[Any, int, Any, float | None]] = {}
        self._feeders = 0
        self._broken: BaseException | None = None
        self._stopping = False
        self._ended: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._deliver, name="procframe-pool-dask-results", daemon=True
        )
        self._thread.start()

    # -- submitting ------------------------------------------------------------------

    def submit(
        self,
        job: Any,
        kind: int,
        func: Any,
        bodies: list[tuple[int, Any]],
        timeout: float | None,
    ) -> None:
        """Run ``func`` on each ``(index, body)`` of ``job`` (args and kwds, or a chunk)."""
        import cloudpickle

        refusal = self._refusal()
        if refusal is not None:
            for index, _ in bodies:
                job._set(index, False, refusal)
            return
        try:
            pickled_func = cloudpickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            error = _unpicklable(e, f"the function {_name(func)}")
            for index, _ in bodies:
                job._set(index, False, error)
            return
        for index, body in bodies:
            try:
                pickled = cloudpickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                what = "its arguments" if kind == task.APPLY else "an item of its input"
                job._set(index, False, _unpicklable(e, f"{what} (task of {_name(func)})"))
                continue
            key = f"{self._key}-{next(self._ids)}"
            with self._lock:
                self._pending[key] = (job, index, None, timeout)
            future = self.client.submit(
                task.run,
                self._key,
                self._init,
                pickled_func,
                pickled,
                kind,
                timeout,
                key=key,
                pure=False,
            )
            with self._lock:
                kept = key in self._pending
                if kept:
                    self._pending[key] = (job, index, future, timeout)
            if not kept:  # terminated meanwhile (its job has failed)
                future.cancel()
                continue
            future.add_done_callback(self._ended.put)

    def _refusal(self) -> BaseException | None:
        if self._broken is not None:
            return self._broken
        if self.state == TERMINATED:
            return BrokenPoolError("the pool was terminated before this task ended")
        return None

    def feeder_started(self) -> None:
        with self._lock:
            self._feeders += 1

    def feeder_done(self) -> None:
        with self._idle:
            self._feeders -= 1
            self._idle.notify_all()
        self._stop_when_idle()

    # -- delivering --------------------------------------------------------------------

    def _deliver(self) -> None:
        while True:
            batch = [self._ended.get()]
            while True:
                try:
                    batch.append(self._ended.get_nowait())
                except queue.Empty:
                    break
            stop = any(f is None for f in batch)
            futures = [f for f in batch if f is not None]
            if futures:
                self._deliver_batch(futures)
            if stop:
                return

    def _deliver_batch(self, futures: list[Any]) -> None:
        finished = [f for f in futures if f.status == "finished"]
        values: dict[str, Any] = {}
        if finished:
            try:
                gathered = self.client.gather(finished)
                values = dict(zip([f.key for f in finished], gathered, strict=True))
            except Exception:  # one of them was lost meanwhile: one by one
                values = {}
        for future in futures:
            with self._lock:
                entry = self._pending.pop(future.key, None)
            if entry is None:  # terminated: its job has failed already
                continue
            job, index, _, timeout = entry
            ok, value = self._outcome(future, values, timeout)
            job._set(index, ok, value)
            del job, value
        with self._idle:
            self._idle.notify_all()
        self._stop_when_idle()

    def _outcome(
        self, future: Any, values: dict[str, Any], timeout: float | None
    ) -> tuple[bool, Any]:
        from distributed import KilledWorker

        try:
            code, data = values[future.key] if future.key in values else future.result()
        except KilledWorker as e:
            return False, outcomes.lost(e)
        except BaseException as e:  # cancelled, the scheduler gone, ...
            if self.state == TERMINATED:
                return False, BrokenPoolError("the pool was terminated before this task ended")
            return False, outcomes.broken(e)
        if code == task.BROKEN:
            error = outcomes.initializer_failed(data)
            with self._lock:
                if self._broken is None:
                    self._broken = error
                error = self._broken
            return False, error
        return outcomes.decode(code, data, timeout)

    # -- ending --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self.state == RUNNING:
                self.state = CLOSED
        self._stop_when_idle()

    def terminate(self) -> None:
        """Fail every task that has not ended, cancel their Dask futures, stop the thread."""
        with self._lock:
            self.state = TERMINATED
            pending, self._pending = self._pending, {}
        error = BrokenPoolError("the pool was terminated before this task ended")
        futures = [future for _, _, future, _ in pending.values() if future is not None]
        for job, index, _, _ in pending.values():
            job._set(index, False, error)
        if futures:
            try:
                self.client.cancel(futures)
                # Dask cannot cancel a task that runs: interrupt it in its thread.
                self.client.run(task.stop, self._key, on_error="ignore")
            except Exception:  # the cluster is gone: nothing runs there any more
                pass
        with self._idle:
            self._idle.notify_all()
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        with self._lock:
            if self.state == RUNNING or self._pending or self._feeders or self._stopping:
                return
            self._stopping = True
        self._ended.put(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every task to end and the thread to stop (after close or terminate)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._pending and not self._feeders, timeout)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or type(func).__name__


def _unpicklable(error: Exception, what: str) -> BaseException:
    return outcomes.pickling_error(
        f"cannot send {what} to the cluster: it cannot be pickled "
        f"({type(error).__name__}: {error})",
        error,
    )
