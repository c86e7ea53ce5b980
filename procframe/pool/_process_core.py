"""The engine of a process pool: its workers, the tasks each one holds, and the thread serving them.

Each worker has a socket of its own.  The pool sends a worker a few tasks
ahead of the one it runs (more when tasks are short), so it never waits for
the parent; a caller's thread sends directly when it can, and one *serving*
thread reads every outcome, sends more tasks, and watches the workers'
sentinels and the tasks' deadlines.

Because the pool knows which tasks each worker holds, and each worker
records in shared memory the task it starts, a worker that dies costs one
task, failed with :class:`WorkerLostError`; the tasks it held but never
started go to the other workers, and a new worker takes its place.  A task
past its timeout is stopped the same way: its worker is killed.

A worker marks its slot once it is ready (its initializer done), so the pool
tells a worker killed after it started fine (replaced, however often it
happens: later and later while workers keep being lost and no task ends)
from one that ended by itself before it was ready: when workers in a row do
that and none is ready, no worker can start, and the pool is broken
(:mod:`procframe.pool._restarts`).

Taking tasks back (no task waits behind a long one while a worker is idle)
--------------------------------------------------------------------------
Each worker also has a *ticket pipe*: for every task it sends a worker, the
pool first writes the task's id (8 bytes) to that worker's pipe, then the
task's frame to its socket, so tickets are in the pipe in the order of the
frames.  Both the worker and the pool hold the pipe's read end:

- the worker, about to start a task, reads one ticket (non-blocking).  If it
  is the task's id, the task is the worker's: it records the start and runs
  it.  If the pipe is empty, or the ticket is a later task's (kept for that
  task), the pool took this task back: the worker skips it, says nothing.
- the pool, when a worker is idle and nothing is pending, reads tickets from
  the pipe of a worker that holds tasks queued behind the one it runs.  The
  tasks whose tickets it read are its again: it removes them from that
  worker's tasks and hands them to idle workers.

The kernel hands each byte of a pipe to one reader only, and every write and
read is whole tickets (writes of at most ``PIPE_BUF`` bytes are atomic), so a
ticket is read either by the worker (the task runs there) or by the pool (it
runs elsewhere), never both: the race between the two is settled by the
kernel, with no lock and no shared-memory ordering.  Both read from the
front, so the pipe always holds the tickets of a run of consecutive frames,
which is why a worker that reads a ticket not its task's knows the task was
taken.  A worker that dies after reading a ticket but before recording the
start never ran the task: it goes to another worker like any unstarted one.
Tasks sent ahead stay where the recent task time says they are worth it (a
few milliseconds of work queued per worker); the take-back fixes the rest.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import threading
import time
import types
from collections import deque

from procframe._core import messages, osutil, serializing
from procframe._core.capabilities import PICKLES_PROCESS
from procframe._core.errors import ProcessPicklingError
from procframe._core.fdwait import wait_readable
from procframe.pool import _frames, _worker
from procframe.pool._errors import (
    BrokenPoolError,
    TaskTimeoutError,
    WorkerLostError,
    WorkerStartError,
)
from procframe.pool._outcomes import decode, unpicklable_task
from procframe.pool._restarts import Restarts
from procframe.posix.connection import Connection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Call = tuple[Any, int, int, tuple[Any, ...]]
    """What a pool submits for one task: (job, index in the job, task kind, the call)."""

RUNNING, CLOSED, TERMINATED = "running", "closed", "terminated"
MAX_AHEAD = 256
"""Most tasks a worker holds queued behind the one it runs."""
AHEAD_WINDOW = 0.002
"""Seconds of work (by the recent average task) a worker may hold queued."""
STREAM_PAUSE = 0.0003
"""Seconds the serving thread rests between rounds while every worker has tasks queued."""
_DEADLINE_POLL = 0.01
_CALL_POLL = 0.05
"""A caller reading its claimed worker looks this often whether the worker is still there."""
_CLAIMED_PAUSE = 0.0001
"""How often a timed task that has not started yet is looked at again."""
STOP_GRACE = 1.0
"""Seconds workers get to exit after SIGTERM (terminate) before SIGKILL."""
_IOV_MAX = 512
"""Buffers per writev (the system allows at least 1024)."""
_LOST = -1
"""Outcome code of a task whose failure the pool itself decided (the value is the exception)."""


class Task:
    """One task: its kind, its pickled call, and where its outcome goes (``job._set(index)``).

    A big call's arguments are in a slab, held (and so kept from reuse) until the task is
    collected: it may be sent again, to another worker.
    """

    __slots__ = ("id", "index", "job", "kind", "payload", "slab", "timeout")

    def __init__(
        self,
        task_id: int,
        kind: int,
        payload: bytes,
        job: Any,
        index: int,
        timeout: float | None,
        slab: messages.Outbound | None = None,
    ) -> None:
        self.id = task_id
        self.kind = kind
        self.payload = payload
        self.job = job
        self.index = index
        self.timeout = timeout
        self.slab = slab


class WithSlab:
    """A frame's header in a worker's outbox, sent with its slab's descriptor."""

    __slots__ = ("data", "fd")

    def __init__(self, data: bytes, fd: int) -> None:
        self.data = data
        self.fd = fd


class Worker:
    """A worker process, its socket, and the tasks sent to it that have not ended."""

    __slots__ = (
        "claimed",
        "eof",
        "fd",
        "held",
        "index",
        "outbox",
        "process",
        "quota",
        "reader",
        "sentinel",
        "socket",
        "stopped",
        "ticket_read",
        "ticket_write",
        "tickets",
        "timed_out",
    )

    def __init__(
        self,
        process: Any,
        index: int,
        sock: socket.socket,
        quota: int | None,
        ticket_pipe: tuple[int, int],
    ) -> None:
        self.process = process
        self.index = index
        self.socket = sock
        self.fd = sock.fileno()
        self.sentinel = process.sentinel
        self.held: deque[Task] = deque()
        self.outbox: deque[bytes | memoryview | WithSlab] = deque()  # sent in order
        self.quota = quota
        self.reader = _frames.FrameReader()
        self.eof = False
        self.stopped = False
        self.timed_out: Task | None = None
        self.claimed = False  # a caller's thread waits for its one task, reading its socket
        self.ticket_read, self.ticket_write = ticket_pipe
        self.tickets = bytearray()  # tickets to write before the frames in the outbox

    def place(self, task: Task) -> None:
        """Make ``task`` this worker's: its ticket, then its frame, go out with the next flush."""
        self.held.append(task)
        if self.quota is not None:
            self.quota -= 1
        self.tickets += _frames.TICKET.pack(task.id)
        header = _frames.HEADER.pack(len(task.payload), task.id, task.kind, 0)
        self.outbox.append(header if task.slab is None else WithSlab(header, task.slab.fd))
        self.outbox.append(task.payload)

    def take_back(self, count: int) -> list[Task]:
        """Up to ``count`` of the tasks this worker holds and has not started, now not its own.

        They are the ones it would start next, in their order.
        """
        try:
            data = os.read(self.ticket_read, _frames.TICKET.size * count)
        except (BlockingIOError, OSError):
            return []
        taken = {ticket for (ticket,) in _frames.TICKET.iter_unpack(data)}
        if not taken:
            return []
        tasks = [task for task in self.held if task.id in taken]
        self.held = deque(task for task in self.held if task.id not in taken)
        if self.quota is not None:
            self.quota += len(tasks)
        return tasks

    def close_channels(self) -> None:
        """Close the socket and the ticket pipe (the worker has ended)."""
        self.socket.close()
        self.reader.close()
        for fd in (self.ticket_read, self.ticket_write):
            if fd >= 0:
                os.close(fd)
        self.ticket_read = self.ticket_write = -1


class ProcessCore:
    """Workers, pending tasks and the serving thread of one process pool."""

    def __init__(
        self,
        ctx: Any,
        processes: int,
        initializer: Any,
        initargs: tuple[Any, ...],
        maxtasks: int | None,
    ) -> None:
        self._ctx = ctx
        self.processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasks
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._pending: deque[Task] = deque()
        self._workers: list[Worker | None] = [None] * processes
        self._slots = ctx.RawArray("q", 2 * processes)
        self._started = memoryview(self._slots).cast("B").cast("q")
        self._ids = itertools.count(1)
        self._function_pickles: dict[int, tuple[Any, bytes]] = {}
        serializer = self._serializer = serializing.of(ctx.serializer)
        self._pickle = serializer.dumps
        self._pickle_function_for = (
            serializer.dumps_for_fresh_child
            if ctx.backend.has(PICKLES_PROCESS)
            else serializer.dumps
        )
        """Pickles a task's function: a fresh interpreter must find it (see Serializer)."""
        self._names = itertools.count(1)
        self.state = RUNNING
        self.task_timeout: float | None = None
        """The default timeout of a map's or imap's tasks."""
        self._broken: BaseException | None = None
        self._feeders = 0
        self._average = 0.001  # seconds per task, recent average
        self._restarts = Restarts(processes)
        self._restart_at: dict[int, float] = {}  # worker index -> when its replacement starts
        self._wake_lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        try:
            for index in range(processes):
                self._start_worker(index)
        except BaseException:
            self._kill_all()
            self._close_wake_pipe()
            raise
        self._thread = threading.Thread(target=self._serve, name="procframe-pool", daemon=True)
        self._thread.start()

    # -- submitting (any thread) ------------------------------------------------

    def _task(self, submission: Call, timeout: float | None, functions: dict[int, bytes]) -> Task:
        """The task of one submission (its call pickled); ``ProcessPicklingError`` if it cannot be
        (also of the type of what pickling raised, as ``multiprocessing`` raises that).

        ``functions`` keeps the pickles of functions already seen (a map's chunks share one).
        """
        job, index, kind, call = submission
        func = call[0]
        try:
            pickled = functions.get(id(func))
            if pickled is None:
                pickled = functions[id(func)] = self._pickle_function(func)
            rest = messages.dumps(call[1:], _frames.INLINE_MAX, True, self._pickle)
        except Exception as e:
            raise unpicklable_task(
                job, index, kind, call, e, self._serializer.name, self._pickle_function_for
            ) from e
        if isinstance(func, _BY_NAME):
            kind |= _frames.SAME_FUNC
        if type(rest) is bytes:
            return Task(next(self._ids), kind, pickled + rest, job, index, timeout)
        slab: Any = rest
        return Task(next(self._ids), kind | _frames.SLAB, pickled, job, index, timeout, slab)

    def _pickle_function(self, func: Any) -> bytes:
        """``func``'s pickle, its length first; kept for functions pickled by name (one
        pickled by value, a closure, is pickled again: what it captured may have changed)."""
        known = self._function_pickles.get(id(func))
        if known is not None and known[0] is func:
            return known[1]
        if not isinstance(func, _BY_NAME) or self._serializer.by_value(func):
            return _pickle_function(func, self._pickle_function_for)
        pickled = _pickle_function(func, self._pickle_function_for)
        if len(self._function_pickles) >= 64:
            self._function_pickles.clear()
        self._function_pickles[id(func)] = (func, pickled)
        return pickled

    def submit(self, calls: list[Call], timeout: float | None) -> None:
        """Queue (job, index, kind, call) tasks; a call that cannot be pickled fails its task."""
        tasks = []
        failed: list[tuple[Any, int, BaseException]] = []
        functions: dict[int, bytes] = {}
        for submission in calls:
            try:
                tasks.append(self._task(submission, timeout, functions))
            except ProcessPicklingError as e:
                failed.append((submission[0], submission[1], e))
        with self._lock:
            refused = self._refusal()
            if refused is None:
                self._pending.extend(tasks)
                look_again = self._dispatch()
        if refused is not None:
            failed += [(task.job, task.index, refused) for task in tasks]
        elif (look_again or timeout is not None) and threading.current_thread() is not self._thread:
            self._wake()  # to send the rest, watch a newly busy worker, or a new deadline
        for job, index, error in failed:
            job._set(index, False, error)

    def call(self, submission: Call) -> bool:
        """Run one untimed task on an idle worker and wait for it, reading its outcome here.

        One thread hand-off fewer than through the serving thread: the worker
        is *claimed*, so nobody else sends it tasks or reads its socket meanwhile.
        False (nothing done) if no worker is idle: ``submit`` the task instead.
        """
        try:
            task = self._task(submission, None, {})
        except ProcessPicklingError:
            return False  # submit() fails it
        with self._lock:
            if self._refusal() is not None or self._pending:
                return False
            w = next((w for w in self._workers if w is not None and _idle(w)), None)
            if w is None:
                return False
            w.place(task)
            w.claimed = True
            self._flush(w)
            if w.outbox:  # a big call: the serving thread sends the rest, and reads
                w.claimed = False
                self._wake()
                return True
        job = task.job
        try:
            while not job.ready():
                readable = wait_readable([w.fd], _CALL_POLL)
                ended: list[tuple[Task, int, Any]] = []
                with self._lock:
                    if self._workers[w.index] is not w or w.eof:
                        break  # it died: the serving thread settles the task
                    if readable:
                        self._receive(w, ended)
                _deliver(ended)
        finally:
            w.claimed = False
            if not job.ready():  # interrupted: the serving thread must watch the worker now
                self._wake()
        return True

    def _refusal(self) -> BaseException | None:
        if self._broken is not None:
            return BrokenPoolError.because(self._broken)
        if self.state == TERMINATED:
            return BrokenPoolError("the pool was terminated")
        return None

    def feeder_started(self) -> None:
        """A thread will go on submitting tasks from an iterable (``imap``)."""
        with self._lock:
            self._feeders += 1

    def feeder_done(self) -> None:
        """A feeder has submitted its last task."""
        with self._lock:
            self._feeders -= 1
        self._wake()

    # -- sending ----------------------------------------------------------------

    def _ahead(self) -> int:
        """How many tasks a worker may hold: the one it runs and a short queue."""
        return 1 + min(MAX_AHEAD, int(AHEAD_WINDOW / max(self._average, 1e-7)))

    def _dispatch(self) -> bool:
        """Hand pending tasks to workers and send (lock held).

        True if the serving thread must look again: a socket is full, or an
        idle worker got work (the serving thread does not watch idle workers'
        sockets, so that a claiming caller alone wakes for its outcome).
        """
        pending = self._pending
        workers = [w for w in self._workers if w is not None and not w.stopped and not w.claimed]
        woken = False
        if workers:
            ahead = self._ahead()
            woken = self._place_pending(workers, ahead)
            if not pending and self._take_back_for_idle(workers):
                woken = self._place_pending(workers, ahead) or woken
        for w in workers:
            if w.outbox:
                self._flush(w)
                woken = woken or bool(w.outbox)
        return woken

    def _place_pending(self, workers: list[Worker], ahead: int) -> bool:
        """Give pending tasks to the workers holding fewest (True: an idle one got work)."""
        pending = self._pending
        woken = False
        while pending:
            best = None
            for w in workers:
                held = len(w.held)
                if held < ahead and w.quota != 0 and (best is None or held < len(best.held)):
                    best = w
            if best is None:
                break
            woken = woken or not best.held
            best.place(pending.popleft())
        return woken

    def _take_back_for_idle(self, workers: list[Worker]) -> bool:
        """Idle workers and nothing pending: take back tasks queued on busy workers (True: some).

        From each worker holding tasks behind the one it runs, about its share
        of them for the idle ones; they go back to the front of the pending tasks.
        """
        idle = sum(1 for w in workers if _idle(w))
        if not idle:
            return False
        taken: list[Task] = []
        for w in workers:
            queued = len(w.held) - 1
            if queued > 0 and not w.eof:
                share = max(1, queued * idle // (idle + 1))
                taken += w.take_back(share)
        self._pending.extendleft(reversed(taken))
        return bool(taken)

    def _flush(self, w: Worker) -> None:
        if w.tickets:  # every ticket before its frame (a pipe this size never fills)
            try:
                written = os.write(w.ticket_write, w.tickets)
            except BlockingIOError:
                return
            except OSError:
                w.tickets.clear()
                w.outbox.clear()
                return
            del w.tickets[:written]
            if w.tickets:
                return
        outbox = w.outbox
        while outbox:
            first = outbox[0]
            try:
                if type(first) is WithSlab:
                    rights = [osutil.rights(first.fd)]
                    sent = w.socket.sendmsg([first.data], rights, socket.MSG_DONTWAIT)
                    outbox[0] = first.data
                else:
                    sent = os.writev(w.fd, _plain_run(outbox))
            except BlockingIOError:
                return
            except OSError:  # the worker is gone: its sentinel will say so
                outbox.clear()
                return
            while sent:
                first = outbox[0]  # bytes or memoryview: a slab's header was sent above
                if sent < len(first):  # type: ignore[arg-type]
                    outbox[0] = memoryview(first)[sent:]  # type: ignore[arg-type]
                    return  # the socket is full
                sent -= len(first)  # type: ignore[arg-type]
                outbox.popleft()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_write >= 0:
                try:
                    os.write(self._wake_write, b"!")
                except BlockingIOError:
                    pass  # already awake

    # -- the serving thread ------------------------------------------------------

    def _serve(self) -> None:
        try:
            while self._serve_once():
                pass
        except BaseException as e:  # a bug here must not leave every get() waiting
            import traceback

            traceback.print_exc()
            ended: list[tuple[Task, int, Any]] = []
            with self._lock:
                self._break(e, ended)
            _deliver(ended)
        finally:
            self._close_wake_pipe()

    def _serve_once(self) -> bool:
        poller = select.poll()
        sockets: dict[int, Worker] = {}
        sentinels: dict[int, Worker] = {}
        with self._lock:
            if self._finished():
                return False
            poller.register(self._wake_read, select.POLLIN)
            for w in self._workers:
                if w is None:
                    continue
                sentinels[w.sentinel] = w
                poller.register(w.sentinel, select.POLLIN)
                if w.held and not (w.eof or w.claimed):
                    sockets[w.fd] = w
                    poller.register(w.fd, select.POLLIN | (select.POLLOUT if w.outbox else 0))
            timeout = _earliest(self._next_deadline(), self._next_restart())
        events = poller.poll(None if timeout is None else max(0.0, timeout) * 1000.0)
        ended: list[tuple[Task, int, Any]] = []
        claimed = False
        with self._lock:
            for fd, event in events:
                if fd == self._wake_read:
                    self._drain_wake_pipe()
                elif fd in sockets:
                    w = sockets[fd]
                    if w.claimed:
                        claimed = True  # its caller reads it
                    elif event & ~select.POLLOUT:
                        self._receive(w, ended)
                    if event & select.POLLOUT:
                        self._flush(w)
            for fd, _ in events:
                if fd in sentinels and self._workers[sentinels[fd].index] is sentinels[fd]:
                    self._bury(sentinels[fd], ended)
            self._stop_overdue(ended)
            self._start_due_workers()
            if self.state != TERMINATED:
                self._dispatch()
                self._stop_idle_workers()
            streaming = all(w is None or len(w.held) > 1 for w in self._workers)
        _deliver(ended)
        if claimed:
            time.sleep(_CLAIMED_PAUSE)  # let the claiming caller read its outcome
        elif streaming:
            # Workers hold queued tasks: let outcomes gather, to read and deliver many
            # per wake-up (one wake-up per outcome costs more than the outcome).
            time.sleep(STREAM_PAUSE)
        return True

    def _finished(self) -> bool:
        if self.state == TERMINATED:
            return True
        if self.state == CLOSED:
            return all(w is None for w in self._workers) and not self._pending and not self._feeders
        return False

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _close_wake_pipe(self) -> None:
        with self._wake_lock:
            for fd in (self._wake_read, self._wake_write):
                if fd >= 0:
                    os.close(fd)
            self._wake_read = self._wake_write = -1

    def _receive(self, w: Worker, ended: list[tuple[Task, int, Any]]) -> bool:
        """Read what ``w`` sent (False: nothing to read); its finished tasks go to ``ended``."""
        try:
            frames = w.reader.receive(w.socket)
        except BlockingIOError:
            return False
        except OSError:
            frames = None
        if frames is None:
            w.eof = True
            return True
        for task_id, code, micros, payload in frames:
            if code == _frames.INIT_FAILED:
                self._break(decode(_frames.TASK_RAISED, payload)[1], ended)
                return True
            if not w.held or w.held[0].id != task_id:
                _frames.close_slab(code, payload)
                continue  # its task was settled already (the pool was terminated or broken)
            task = w.held.popleft()
            self._average = 0.9 * self._average + 0.1e-6 * micros
            ended.append((task, code, payload))
        if frames:
            self._restarts.progress()
        return True

    def _bury(self, w: Worker, ended: list[tuple[Task, int, Any]]) -> None:
        """``w`` has exited: take its last outcomes, settle its tasks, start a replacement."""
        while not w.eof and self._receive(w, ended):
            pass  # (no end of stream if a process the task forked holds the socket)
        w.process.join(5.0)
        exitcode = w.process.exitcode
        ready = self._started[2 * w.index] != 0
        w.close_channels()
        self._workers[w.index] = None
        lost_one = False
        if w.held:
            head = w.held.popleft()
            if w.timed_out is head:
                ended.append((head, _LOST, _timeout_error(head)))
                lost_one = True
            elif self._started[2 * w.index] == head.id:
                ended.append((head, _LOST, WorkerLostError(w.process.pid, exitcode)))
                lost_one = True
            else:
                w.held.appendleft(head)
            self._pending.extendleft(reversed(w.held))
            w.held.clear()
        delay = 0.0
        if ready:
            self._restarts.worker_ready()
        unasked = not (w.stopped or lost_one or (ready and exitcode == 0))
        if unasked and self._broken is None:
            delay = self._restarts.lost(exitcode, ready, time.monotonic())
            if self._restarts.given_up(self._any_worker_ready()):
                failed = self._restarts.failed_starts
                self._break(WorkerStartError(w.process.pid, exitcode, failed), ended)
                return
        if delay > 0.0:
            self._restart_at[w.index] = time.monotonic() + delay
        elif self._needs_workers():
            self._start_worker(w.index)

    def _any_worker_ready(self) -> bool:
        return any(w is not None and self._started[2 * w.index] != 0 for w in self._workers)

    def _next_restart(self) -> float | None:
        """Seconds until the next delayed replacement of a worker is due (None: none is)."""
        if not self._restart_at:
            return None
        return min(self._restart_at.values()) - time.monotonic()

    def _start_due_workers(self) -> None:
        """Start the delayed replacements whose time has come (if the pool still needs them)."""
        now = time.monotonic()
        for index, due in list(self._restart_at.items()):
            if due <= now:
                del self._restart_at[index]
                if self._needs_workers() and self._workers[index] is None:
                    self._start_worker(index)

    def _needs_workers(self) -> bool:
        if self._broken is not None or self.state == TERMINATED:
            return False
        return self.state == RUNNING or bool(self._pending) or self._feeders > 0

    def _next_deadline(self) -> float | None:
        """Seconds until the next timed task may be overdue (None: no timed task runs)."""
        nearest = None
        now = time.monotonic()
        for w in self._workers:
            if w is None or not w.held or w.timed_out is not None:
                continue
            head = w.held[0]
            if head.timeout is None:
                continue
            if self._started[2 * w.index] == head.id:
                wait = self._started[2 * w.index + 1] / 1e9 + head.timeout - now
            else:
                wait = _DEADLINE_POLL
            nearest = wait if nearest is None else min(nearest, wait)
        return nearest

    def _stop_overdue(self, ended: list[tuple[Task, int, Any]]) -> None:
        now = time.monotonic()
        for w in self._workers:
            if w is None or not w.held or w.timed_out is not None:
                continue
            head = w.held[0]
            if head.timeout is None or self._started[2 * w.index] != head.id:
                continue
            if now >= self._started[2 * w.index + 1] / 1e9 + head.timeout:
                w.timed_out = head
                w.process.kill()

    def _stop_idle_workers(self) -> None:
        """Once closed and out of work, let the workers finish: they see the socket close."""
        if self.state != CLOSED or self._pending or self._feeders:
            return
        for w in self._workers:
            if w is not None and not w.held and not w.stopped:
                w.stopped = True
                try:
                    w.socket.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _break(self, error: BaseException, ended: list[tuple[Task, int, Any]]) -> None:
        """The pool cannot go on (its initializer failed, its workers cannot start): fail every
        task and stop the workers."""
        if self._broken is not None:
            return
        self._broken = error
        self._restart_at.clear()
        failure = BrokenPoolError.because(self._broken)
        for task in self._take_all_tasks():
            ended.append((task, _LOST, failure))
        for w in self._workers:
            if w is not None:
                w.stopped = True
                w.process.kill()

    def _take_all_tasks(self) -> list[Task]:
        tasks = list(self._pending)
        self._pending.clear()
        for w in self._workers:
            if w is not None:
                tasks += w.held
                w.held.clear()
        return tasks

    def _start_worker(self, index: int) -> None:
        parent_end, child_end = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        conn = Connection(child_end.detach())
        ticket_read, ticket_write = os.pipe()
        tickets = Connection(os.dup(ticket_read), writable=False)
        self._started[2 * index] = 0  # the worker sets it once ready
        try:
            os.set_blocking(ticket_read, False)  # the worker's end too: one open file
            os.set_blocking(ticket_write, False)
            process = self._ctx.Process(
                target=_worker.main,
                args=(
                    conn,
                    self._slots,
                    index,
                    self._initializer,
                    self._initargs,
                    self._maxtasks,
                    tickets,
                ),
                name=f"PoolWorker-{next(self._names)}",
                daemon=True,
            )
            process.start()
        except BaseException:
            parent_end.close()
            os.close(ticket_read)
            os.close(ticket_write)
            raise
        finally:
            conn.close()
            tickets.close()
        parent_end.setblocking(False)
        self._workers[index] = Worker(
            process, index, parent_end, self._maxtasks, (ticket_read, ticket_write)
        )

    # -- ending ------------------------------------------------------------------

    def close(self) -> None:
        """Take no new tasks; workers exit once every task has ended."""
        with self._lock:
            if self.state == RUNNING:
                self.state = CLOSED
        self._wake()

    def terminate(self) -> None:
        """Stop the workers now; tasks that have not ended fail with ``BrokenPoolError``."""
        if os.getpid() != self._owner:
            return  # a forked child's copy: the workers are its parent's
        with self._lock:
            if self.state == TERMINATED:
                return
            self.state = TERMINATED
            tasks = self._take_all_tasks()
            workers = [w for w in self._workers if w is not None]
        for w in workers:
            w.process.terminate()
        self._wake()
        error = BrokenPoolError("the pool was terminated before this task ended")
        for task in tasks:
            task.job._set(task.index, False, error)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._reap(workers)

    def _reap(self, workers: list[Worker]) -> None:
        deadline = time.monotonic() + STOP_GRACE
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.exitcode is None:
                w.process.kill()
                w.process.join()
            w.close_channels()
        with self._lock:
            for w in workers:
                if self._workers[w.index] is w:
                    self._workers[w.index] = None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the serving thread and every worker to end (after close or terminate)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("cannot join a pool from its own thread (a callback)")
        self._thread.join(timeout)

    def _kill_all(self) -> None:
        for w in self._workers:
            if w is not None:
                w.process.kill()
                w.process.join()
                w.close_channels()
        self._workers = [None] * self.processes


_BY_NAME = (types.FunctionType, types.BuiltinFunctionType, type)
"""What pickle saves by name: a worker may keep such a function unpickled."""


def _pickle_function(func: Any, pickle: Any) -> bytes:
    pickled: bytes = pickle(func)
    return _frames.FUNC_LENGTH.pack(len(pickled)) + pickled


def _plain_run(outbox: deque[bytes | memoryview | WithSlab]) -> list[bytes | memoryview]:
    """The buffers at the front of ``outbox`` up to the first header sent with a slab."""
    run: list[Any] = []
    for item in itertools.islice(outbox, _IOV_MAX):
        if type(item) is WithSlab:
            break
        run.append(item)
    return run


def _earliest(first: float | None, second: float | None) -> float | None:
    """The smaller of two waits, either of which may be None (no wait)."""
    if first is None or second is None:
        return second if first is None else first
    return min(first, second)


def _idle(w: Worker) -> bool:
    return not (w.held or w.stopped or w.claimed or w.eof or w.quota == 0)


def _deliver(ended: list[tuple[Task, int, Any]]) -> None:
    """Hand outcomes to their jobs, those of one job together (one wake-up of its reader)."""
    for job, group in itertools.groupby(ended, key=lambda outcome: outcome[0].job):
        job._set_many([(task.index, *_decode(code, payload)) for task, code, payload in group])


def _timeout_error(task: Task) -> TaskTimeoutError:
    return TaskTimeoutError(
        f"the task ran longer than its timeout ({task.timeout} s): its worker was killed"
    )


def _decode(code: int, payload: Any) -> tuple[bool, Any]:
    """(ok, value) from an outcome the worker sent, or one the pool decided (``_LOST``)."""
    if code == _LOST:
        return False, payload
    return decode(code, payload)
