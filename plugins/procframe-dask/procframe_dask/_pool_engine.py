"""The engine of a pool on the cluster: tasks submitted to Dask, outcomes delivered as they end.

Each task (an apply, or one chunk of a map) is one Dask task
(:func:`procframe_dask._pool_task.run`); the tasks of one call go to the
scheduler in one ``client.map``.  Outcomes reach their jobs through the
pool's own thread, with ``job.deliver(index, ok, value)`` (the protocol of
:mod:`procframe.pool`'s result classes): callbacks run there.

* An ``apply_async`` or an ``imap``'s chunk: its result is fetched in the
  client's event loop as soon as it ends (as ``future.result()`` does), and
  handed to the pool's thread.
* A map's chunks: a done-callback hands each ended future to the pool's
  thread, which fetches their results in a few growing batches (one
  ``client.gather`` each, as Dask's own ``client.gather`` of a whole map).
* A blocking ``apply``: the calling thread waits and delivers (no hop).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from typing import Any

import procframe
from procframe.pool import BrokenPoolError
from procframe_dask import _pool_outcomes as outcomes
from procframe_dask import _pool_task as task

RUNNING, CLOSED, TERMINATED = "RUN", "CLOSE", "TERMINATE"

MAP_FETCH_FIRST = 64
"""Results of a map fetched in its first batch; each next batch is as large as all before."""
MAP_FETCH_DELAY = 0.2
"""Seconds at most that the results of a map wait to be fetched with others.

Each fetch (``client.gather``) costs the scheduler and the client a round trip:
fetching a map's results in a few growing batches, as ``client.gather`` of the
whole map does in one, rather than as each task ends, is most of what brings
a map of small tasks to Dask's own speed.  A failure is delivered at once."""


class _Entry:
    """A submitted task: its job, its place there, its Dask future, its timeout, its map."""

    __slots__ = ("future", "group", "index", "job", "timeout")

    def __init__(self, job: Any, index: int, timeout: float | None, group: _Group | None):
        self.job = job
        self.index = index
        self.timeout = timeout
        self.group = group
        self.future: Any = None


class _Group:
    """The tasks of one map: how many have not ended, those ended but not fetched."""

    __slots__ = ("ended", "fetched", "left", "since")

    def __init__(self, size: int) -> None:
        self.left = size
        self.fetched = 0
        self.ended: list[Any] = []
        self.since = 0.0

    def hold(self, future: Any) -> None:
        if not self.ended:
            self.since = time.monotonic()
        self.ended.append(future)

    def due(self) -> bool:
        """Whether the ended futures are to be fetched now."""
        return (
            self.left <= 0
            or len(self.ended) >= max(MAP_FETCH_FIRST, self.fetched)
            or time.monotonic() - self.since >= MAP_FETCH_DELAY
        )

    def take(self) -> list[Any]:
        taken, self.ended = self.ended, []
        self.fetched += len(taken)
        return taken


class Engine:
    """The Dask futures of one pool, and the thread that delivers their outcomes."""

    def __init__(self, client: Any, processes: int, init: bytes | None) -> None:
        self.client = client
        self.processes = processes
        self.state = RUNNING
        self.task_timeout: float | None = None
        self._key = f"procframe-pool-{uuid.uuid4().hex}"
        self._init = init
        self._authkey = bytes(procframe.current_process().authkey)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: dict[str, _Entry] = {}
        self._feeders = 0
        self._broken: BaseException | None = None
        self._stopping = False
        self._ended: queue.SimpleQueue[Any] = queue.SimpleQueue()
        """Ended futures (of maps), ``(future, value)`` (fetched already), None: stop."""
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
        *,
        stream: bool = True,
        here: bool = False,
        chunksize: int = 1,
    ) -> None:
        """Run ``func`` on each ``(index, body)`` of ``job`` (args and kwds, or a chunk).

        The tasks go to the scheduler in one message (``client.map``).  With
        ``stream`` their outcomes are delivered as they end (an apply, an
        imap); without, those that succeed are fetched in growing batches (a
        map, whose result is whole only at its end), and a failure at once.
        With ``here``, this thread waits for the outcomes and delivers them
        (a blocking ``apply``: no hop through the pool's thread).  ``chunksize``:
        the items of a map's chunk (an unpicklable item is named by its place).
        """
        refusal = self._refusal()
        if refusal is not None:
            for index, _ in bodies:
                job.deliver(index, False, refusal)
            return
        try:
            pickled_func = task.dumps(func)
        except Exception as e:
            error = _unpicklable(e, _task(kind, func), f"its function ({_repr(func)})")
            for index, _ in bodies:
                job.deliver(index, False, error)
            return
        group = None if stream else _Group(len(bodies))
        keys: list[str] = []
        payloads: list[bytes] = []
        entries: list[_Entry] = []
        for index, body in bodies:
            try:
                payloads.append(task.dumps(body))
            except Exception as e:
                if group is not None:
                    group.left -= 1
                culprit, refusal = _culprit(kind, index * chunksize, body)
                failure = _unpicklable(refusal or e, _task(kind, func), culprit)
                job.deliver(index, False, failure)
                continue
            keys.append(f"{self._key}-{next(self._ids)}")
            entries.append(_Entry(job, index, timeout, group))
        if not keys:
            return
        with self._lock:
            self._pending.update(zip(keys, entries, strict=True))
        # Keyword names of task.run that client.map does not take for its own.
        constants = {
            "task_pool": self._key,
            "task_init": self._init,
            "task_func": pickled_func,
            "task_kind": kind,
            "task_timeout": timeout,
            "task_authkey": self._authkey,
        }
        try:
            if len(keys) == 1:
                futures = [
                    self.client.submit(task.run, payloads[0], key=keys[0], pure=False, **constants)
                ]
            else:
                futures = self.client.map(task.run, payloads, key=keys, pure=False, **constants)
        except Exception as e:  # the cluster is gone (or refused the tasks): they fail here
            self._fail_unsent(keys, e)
            return
        with self._lock:
            kept = []
            for future in futures:
                entry = self._pending.get(future.key)
                if entry is not None:
                    entry.future = future
                    kept.append(future)
        if len(kept) < len(futures):  # terminated meanwhile (their jobs have failed)
            dropped = [f for f in futures if f.key not in self._pending]
            try:
                self.client.cancel(dropped)
            except Exception:
                pass
        if here:
            self._deliver_here(kept)
            return
        if group is None:  # fetched in the client's loop as each ends: no hop, no round trip
            self.client.loop.add_callback(self._fetch, kept)
        else:
            for future in kept:
                future.add_done_callback(self._ended.put)

    async def _fetch(self, futures: list[Any]) -> None:
        """In the client's event loop: each future's outcome, fetched as soon as it ends (Dask
        merges the fetches that overlap), handed to the pool's thread as ``(future, value)``."""
        import asyncio

        async def fetch(future: Any) -> None:
            try:
                value = await self.client.gather(future, asynchronous=True)
            except BaseException:  # lost, cancelled...: the pool's thread asks it why
                self._ended.put(future)
            else:
                self._ended.put((future, value))

        fetches = [fetch(future) for future in futures]
        futures.clear()  # each future is let go once its outcome is fetched, not with the rest
        await asyncio.gather(*fetches)

    def _deliver_here(self, futures: list[Any]) -> None:
        """Wait for ``futures`` in this thread, as ``future.result()`` does, and deliver them."""
        values: dict[str, Any] = {}
        for future in futures:
            try:
                values[future.key] = future.result()
            except Exception:  # lost, cancelled...: _outcome says how
                pass
        self._deliver_batch(futures, values)

    def _fail_unsent(self, keys: list[str], error: BaseException) -> None:
        with self._lock:
            entries = [self._pending.pop(key, None) for key in keys]
        failure = outcomes.broken(error)
        for entry in entries:
            if entry is not None:
                entry.job.deliver(entry.index, False, failure)
        with self._idle:
            self._idle.notify_all()
        self._stop_when_idle()

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
        held: dict[int, _Group] = {}  # groups (maps) with ended futures not fetched yet
        while True:
            wait = None
            if held:
                oldest = min(group.since for group in held.values())
                wait = max(0.0, oldest + MAP_FETCH_DELAY - time.monotonic())
            try:
                batch = [self._ended.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._ended.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in batch)
            fetched = {item[0].key: item[1] for item in batch if isinstance(item, tuple)}
            ended = [
                item[0] if isinstance(item, tuple) else item for item in batch if item is not None
            ]
            now = [future for future in ended if not self._hold(future, held)]
            for group in list(held.values()):
                if stop or group.due():
                    now.extend(group.take())
                    del held[id(group)]
            if now:
                self._deliver_batch(now, fetched)
            if stop:
                return

    def _hold(self, future: Any, held: dict[int, _Group]) -> bool:
        """Keep ``future`` of a map for a later fetch (with more); False: deliver it now."""
        with self._lock:
            entry = self._pending.get(future.key)
        group = entry.group if entry is not None else None
        if group is None:
            return False
        group.left -= 1
        if future.status != "finished":  # lost, cancelled: the map fails now
            return False
        group.hold(future)
        held[id(group)] = group
        return True

    def _deliver_batch(self, futures: list[Any], values: dict[str, Any] | None = None) -> None:
        """Deliver the outcomes of ended ``futures`` (``values``: those fetched already)."""
        values = dict(values or {})
        finished = [f for f in futures if f.key not in values and f.status == "finished"]
        if finished:
            try:
                gathered = self.client.gather(finished)
                values.update(zip([f.key for f in finished], gathered, strict=True))
            except Exception:  # one of them was lost meanwhile: one by one
                pass
        for future in futures:
            with self._lock:
                entry = self._pending.pop(future.key, None)
            if entry is None:  # terminated: its job has failed already
                continue
            ok, value = self._outcome(future, values, entry.timeout)
            entry.job.deliver(entry.index, ok, value)
            del entry, value
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
        futures = [entry.future for entry in pending.values() if entry.future is not None]
        for entry in pending.values():
            entry.job.deliver(entry.index, False, error)
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


def _task(kind: int, func: Any) -> str:
    name = _name(func)
    return f"the task {name}(...)" if kind == task.APPLY else f"a task of the map of {name}"


def _culprit(kind: int, first: int, body: Any) -> tuple[str, Exception | None]:
    """Which part of a task's ``body`` the serializer refuses ('its args[1] (<repr>)'), and
    its refusal (which names that part), if one part alone is refused."""
    if kind == task.APPLY:
        args, kwds = body
        parts = [(f"args[{i}]", arg) for i, arg in enumerate(args)]
        parts += [(f"kwds[{key!r}]", value) for key, value in kwds.items()]
    else:
        parts = [(f"input item {first + i}", item) for i, item in enumerate(body)]
    for label, value in parts:
        try:
            task.dumps(value)
        except Exception as e:
            return f"its {label} ({_repr(value)})", e
    return "its arguments", None


def _repr(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unpicklable(error: Exception, what: str, culprit: str) -> BaseException:
    return outcomes.pickling_error(
        f"cannot send {what} to the cluster: {culprit} cannot be pickled "
        f"({type(error).__name__}: {error})",
        error,
    )
