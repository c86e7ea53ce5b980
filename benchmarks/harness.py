"""One benchmark measurement, in a fresh interpreter, for procframe or the standard library.

``python benchmarks/harness.py --impl procframe|stdlib --case start_join
--method fork --iterations K`` runs the same code against ``import procframe as
mp`` or ``import multiprocessing as mp`` and prints one JSON line: the
per-iteration median and mean in seconds per operation (a table of rates
inverts them).  ``python -m procframe bench`` runs it.

It lives outside the procframe package on purpose: it is the one place that
imports the standard library's ``multiprocessing``, as the reference, and only
in an interpreter of its own.  It runs as a script, so spawned children
re-import it by path as ``__mp_main__``, as they would a user's script, and
its top level imports nothing but ``sys``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType
    from typing import Any

    Case = Callable[[ModuleType, str, int], list[float]]

IMPLEMENTATIONS = ("procframe", "stdlib", "multiprocess", "loky", "dask")
"""What ``--impl`` runs: procframe, the standard library, or a peer that replaces pickle
(``multiprocess``, with dill; loky, with cloudpickle: its executor runs only the pool cases),
or Dask's own API (the dask cases only, on the cluster of ``PROCFRAME_DASK_ADDRESS``)."""


def noop() -> None:
    """The target of every started process: returns at once."""


def start_join(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per ``Process(target=noop)``, ``start()``, ``join()``, after one warm-up."""
    from time import perf_counter

    ctx = mp.get_context(method)
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    samples = []
    for _ in range(iterations):
        began = perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append(perf_counter() - began)
        if p.exitcode != 0:
            raise RuntimeError(f"the benchmark's child exited with code {p.exitcode}")
    return samples


PAYLOAD_SIZE = 256
"""Characters of each string passed between processes, as in the seed's benchmark."""


def produce(channel: Any, method: str, count: int) -> None:
    """Send ``"ready"``, ``count`` 256-character strings, then ``None``, by ``channel.method``."""
    put = getattr(channel, method)
    item = "x" * PAYLOAD_SIZE
    put("ready")
    for _ in range(count):
        put(item)
    put(None)


def consume(get: Callable[[], object], count: int) -> float:
    """Seconds per item taken by ``get``: the clock runs from ``"ready"`` to the sentinel."""
    from time import perf_counter

    if get() != "ready":
        raise RuntimeError("the producer's first item was not 'ready'")
    began = perf_counter()
    for _ in range(count):
        get()
    last = get()
    elapsed = perf_counter() - began
    if last is not None:
        raise RuntimeError(f"expected the sentinel None after {count} items, got {last!r}")
    return elapsed / count


def pass_between_processes(
    mp: ModuleType, method: str, count: int, kind: str, manager: Any = None
) -> list[float]:
    """Seconds per string passed from a child producer to this process through a ``kind``.

    The ``kind`` is made by the ``method`` context or, if given, by ``manager``
    (then it lives in the manager's server).  The child starts before the clock
    does; its first item, ``"ready"``, starts the clock, which stops at the
    sentinel after ``count`` strings.
    """
    ctx = mp.get_context(method)
    if kind == "Pipe":
        channel, writer = ctx.Pipe(duplex=False)
        get, put = channel.recv, "send"
    else:
        channel = writer = getattr(ctx if manager is None else manager, kind)()
        get, put = channel.get, "put"
    p = ctx.Process(target=produce, args=(writer, put, count))
    p.start()
    if kind == "Pipe":
        writer.close()
    seconds = consume(get, count)
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"the benchmark's producer exited with code {p.exitcode}")
    return [seconds]


def thread_queue(mp: ModuleType, method: str, count: int) -> list[float]:
    """Seconds per string passed between two threads by a ``queue.Queue``: the reference.

    Neither ``mp`` nor ``method`` is used: both implementations run the same
    standard-library code, so the ratio of this case shows the machine's noise.
    """
    import queue
    import threading

    channel: queue.Queue[object] = queue.Queue()
    producer = threading.Thread(target=produce, args=(channel, "put", count))
    producer.start()
    seconds = consume(channel.get, count)
    producer.join()
    return [seconds]


def queue_case(mp: ModuleType, method: str, count: int) -> list[float]:
    """``Queue()``: see :func:`pass_between_processes`."""
    return pass_between_processes(mp, method, count, "Queue")


def simple_queue_case(mp: ModuleType, method: str, count: int) -> list[float]:
    """``SimpleQueue()``: see :func:`pass_between_processes`."""
    return pass_between_processes(mp, method, count, "SimpleQueue")


def pipe_case(mp: ModuleType, method: str, count: int) -> list[float]:
    """``Pipe(duplex=False)``, the child writing: see :func:`pass_between_processes`."""
    return pass_between_processes(mp, method, count, "Pipe")


CHUNKS = 10
"""Samples per run of the Lock, Condition and sequence cases: the run's operations in equal
chunks."""


def chunk_sizes(iterations: int) -> list[int]:
    """``iterations`` split into at most :data:`CHUNKS` near-equal positive parts."""
    chunks = min(CHUNKS, iterations)
    return [iterations // chunks + (i < iterations % chunks) for i in range(chunks)]


def _warm_up() -> float:
    import os  # loaded with the interpreter: no cost

    return float(os.environ.get("PROCFRAME_BENCH_WARM_UP", "0.2"))


WARM_UP = _warm_up()
"""Seconds of the measured operation before the samples of a lock, sequence or pool case,
for both implementations (``PROCFRAME_BENCH_WARM_UP`` in the environment changes it: the
project's tests, which never assert a timing, shorten it).

Making its first lock under spawn or forkserver (an ``Array`` makes one),
the standard library starts its resource tracker, a new interpreter that
takes a core for a while; measured at once, the lock would be billed for
that start, which is a cost of creating, not of acquiring or reading.
"""


def acquire_release(lock: Any, iterations: int) -> list[float]:
    """Seconds per ``lock.acquire()``, ``lock.release()`` pair, one sample per chunk.

    The calls look the methods up every time, as the seed's benchmark and a
    user's code do.  :data:`WARM_UP` seconds of pairs come first.
    """
    from time import perf_counter

    warm_until = perf_counter() + WARM_UP
    while perf_counter() < warm_until:
        for _ in range(1000):
            lock.acquire()
            lock.release()
    samples = []
    for size in chunk_sizes(iterations):
        began = perf_counter()
        for _ in range(size):
            lock.acquire()
            lock.release()
        samples.append((perf_counter() - began) / size)
    return samples


def thread_lock(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``threading.Lock``: the reference (the same code runs for both implementations)."""
    import threading

    return acquire_release(threading.Lock(), iterations)


def thread_rlock(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``threading.RLock``: the reference (the same code runs for both implementations)."""
    import threading

    return acquire_release(threading.RLock(), iterations)


def lock_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``Lock()`` of the ``method`` context, in one process."""
    return acquire_release(mp.get_context(method).Lock(), iterations)


def rlock_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``RLock()`` of the ``method`` context, in one process."""
    return acquire_release(mp.get_context(method).RLock(), iterations)


def read_items(seq: Any, iterations: int) -> list[float]:
    """Seconds per ``seq[5]``, one sample per chunk: the seed's sequence benchmark.

    The loop is the seed's, ``for i in range(n): a = seq[5]``, so each sample
    includes the loop's own cost, the same for both implementations.
    :data:`WARM_UP` seconds of reads come first.
    """
    from time import perf_counter

    warm_until = perf_counter() + WARM_UP
    while perf_counter() < warm_until:
        for _ in range(1000):
            _item = seq[5]
    samples = []
    for size in chunk_sizes(iterations):
        began = perf_counter()
        for _ in range(size):
            _item = seq[5]
        samples.append((perf_counter() - began) / size)
    return samples


SEQUENCE_LENGTH = 10
"""Integers in each sequence read, as in the seed's benchmark."""


def list_read(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """A ``list``: the reference (the same code runs for both implementations)."""
    return read_items([0] * SEQUENCE_LENGTH, iterations)


def raw_array_read(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``RawArray('i', 10)`` of the ``method`` context: shared memory, no lock."""
    return read_items(mp.get_context(method).RawArray("i", SEQUENCE_LENGTH), iterations)


def array_read(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``Array('i', 10)`` of the ``method`` context: each read takes its lock (a new RLock)."""
    return read_items(mp.get_context(method).Array("i", SEQUENCE_LENGTH), iterations)


def condition_partner(cond: Any, iterations: int) -> None:
    """The other side of :func:`interleave`: notify, then ``iterations`` times wait and notify."""
    cond.acquire()
    cond.notify()
    for _ in range(iterations):
        cond.wait()
        cond.notify()
    cond.release()


def interleave(cond: Any, start_partner: Callable[[], Any], iterations: int) -> list[float]:
    """Seconds per wait on ``cond``, two parties taking turns, one sample per chunk.

    The seed's benchmark: holding the lock, start the partner
    (:func:`condition_partner`) and wait for its first notify; then
    ``iterations`` times notify and wait, while the partner waits and
    notifies.  Each turn is two waits (one per side), each woken by a notify.
    """
    from time import perf_counter

    cond.acquire()
    partner = start_partner()
    cond.wait()
    samples = []
    for size in chunk_sizes(iterations):
        began = perf_counter()
        for _ in range(size):
            cond.notify()
            cond.wait()
        samples.append((perf_counter() - began) / (2 * size))
    cond.release()
    partner.join()
    if getattr(partner, "exitcode", 0) != 0:
        raise RuntimeError(f"the benchmark's partner exited with code {partner.exitcode}")
    return samples


def thread_condition(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``threading.Condition`` between two threads: the reference."""
    import threading

    cond = threading.Condition()

    def start() -> threading.Thread:
        thread = threading.Thread(target=condition_partner, args=(cond, iterations))
        thread.start()
        return thread

    return interleave(cond, start, iterations)


def interleave_with_child(ctx: Any, cond: Any, iterations: int) -> list[float]:
    """:func:`interleave` on ``cond`` between this process and a child of ``ctx``."""

    def start() -> Any:
        p = ctx.Process(target=condition_partner, args=(cond, iterations))
        p.start()
        return p

    return interleave(cond, start, iterations)


def condition_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``Condition()`` of the ``method`` context between this process and a child."""
    ctx = mp.get_context(method)
    return interleave_with_child(ctx, ctx.Condition(), iterations)


POOL_PROCESSES = 2
"""Workers of every pool measured: the issue's start-up row asks for two, and the other rows
use as many, so that a machine with more cores measures the same thing."""

POOL_DEADLINE = 60.0
"""Seconds any one step of a pool case (a start, a warm-up, a sample, a stop) may take.

A standard-library pool whose worker dies waits for it forever; rather than
leave the benchmark hanging until its driver's timeout, a step that takes
longer ends the run: :class:`Deadline` kills the children and exits with
code 3, which the driver reports as a failed run.
"""


def square(x: int) -> int:
    """The trivial function of every pool case."""
    return x * x


def pause_pid(seconds: float) -> int:
    """Sleep ``seconds``, then return this worker's pid: tells which workers have started."""
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def sum_of_squares(count: int) -> int:
    """``sum(square(x) for x in range(count))``, to check a pool's results."""
    return (count - 1) * count * (2 * count - 1) // 6


KILL_QUIET = 0.3
"""Seconds without a child process a hung run waits for before it exits: three rounds of
the standard library's pool upkeep, which replaces the workers it sees dead."""


def _refuse_fork() -> int:
    raise OSError("this benchmark run is ending: no new process")


class Deadline:
    """A watchdog thread that ends the run if one step of a pool case takes too long.

    :meth:`renew` gives the next step ``seconds`` more; past them, the thread
    writes what hung on stderr, SIGKILLs every child process (a pool's workers
    do not exit when their pool's process dies) and exits with code 3.  A
    thread, not a signal, so that it fires whatever the main thread is blocked
    in.
    """

    def __init__(self, mp: ModuleType, seconds: float = POOL_DEADLINE) -> None:
        import threading
        import time

        self.mp = mp
        self.seconds = seconds
        self.clock = time.monotonic
        self.step = "the first step"
        self.expires = self.clock() + seconds
        self.finished = threading.Event()
        self.watcher = threading.Thread(target=self.watch, name="pool-deadline", daemon=True)

    def __enter__(self) -> Deadline:
        self.watcher.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished.set()
        self.watcher.join()

    def renew(self, step: str) -> None:
        """Start ``step``, which has :attr:`seconds` from now."""
        self.step = step
        self.expires = self.clock() + self.seconds

    def watch(self) -> None:
        while not self.finished.wait(max(0.0, self.expires - self.clock())):
            if self.clock() >= self.expires:
                self.expire()

    def expire(self) -> None:
        import os
        import signal

        sys.stderr.write(
            f"pool case: {self.step} took more than {self.seconds:g} s; "
            "killing the child processes\n"
        )
        sys.stderr.flush()
        try:
            # A pool whose workers die starts others (the standard library's checks every
            # 0.1 s), which would outlive this run: no more forks, and kill until no child
            # is seen for a while (bounded: a backend may start processes another way).
            os.fork = _refuse_fork
            quiet_since = self.clock()
            give_up = quiet_since + 10 * KILL_QUIET
            while self.clock() - quiet_since < KILL_QUIET and self.clock() < give_up:
                children = self.mp.active_children()
                for child in children:
                    os.kill(child.pid, signal.SIGKILL)
                if children:
                    quiet_since = self.clock()
                self.finished.wait(0.02)
        finally:
            os._exit(3)


def wait_for_workers(pool: Any, processes: int = POOL_PROCESSES) -> None:
    """Return once every worker of ``pool`` has run a task (spawned workers start late)."""
    seen: set[int] = set()
    while len(seen) < processes:
        seen.update(pool.map(pause_pid, [0.01] * (2 * processes), chunksize=1))


def measure_pool(
    mp: ModuleType,
    method: str,
    run: Callable[[Any, int], None],
    sizes: list[int],
    warm_size: int,
) -> list[float]:
    """Seconds per operation of ``run(pool, size)``, one sample per size, on a fresh pool.

    The pool has :data:`POOL_PROCESSES` workers of the ``method`` context.
    Once they have all started, :data:`WARM_UP` seconds of ``run(pool,
    warm_size)`` come first.  Every step is bounded by a :class:`Deadline`, and
    the pool is terminated and joined whatever happens.
    """
    from time import perf_counter

    with Deadline(mp) as deadline:
        deadline.renew(f"starting a pool ({method})")
        pool = mp.get_context(method).Pool(POOL_PROCESSES)
        try:
            wait_for_workers(pool)
            deadline.renew("the warm-up")
            warm_until = perf_counter() + WARM_UP
            while perf_counter() < warm_until:
                run(pool, warm_size)
            samples = []
            for size in sizes:
                deadline.renew(f"a sample of {size} operations")
                began = perf_counter()
                run(pool, size)
                samples.append((perf_counter() - began) / size)
        finally:
            deadline.renew("terminating and joining the pool")
            pool.terminate()
            pool.join()
    return samples


def apply_round_trips(pool: Any, count: int) -> None:
    """``count`` synchronous ``pool.apply(square, (x,))``, each result checked."""
    for x in range(count):
        if pool.apply(square, (x,)) != x * x:
            raise RuntimeError(f"pool.apply(square, ({x},)) returned a wrong result")


def pool_apply(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per ``pool.apply(square, (x,))`` round trip, one sample per chunk."""
    return measure_pool(mp, method, apply_round_trips, chunk_sizes(iterations), 100)


def iterate_results(name: str) -> Callable[[Any, int], None]:
    """``pool.<name>(square, range(count), chunksize=1)``, iterated to its end and checked."""

    def run(pool: Any, count: int) -> None:
        total = 0
        for y in getattr(pool, name)(square, range(count), chunksize=1):
            total += y
        if total != sum_of_squares(count):
            raise RuntimeError(f"pool.{name} of {count} items gave wrong results")

    return run


def pool_imap(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of ``pool.imap(square, ..., chunksize=1)``: a new imap per chunk."""
    return measure_pool(mp, method, iterate_results("imap"), chunk_sizes(iterations), 1000)


def pool_imap_unordered(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of ``pool.imap_unordered(square, ..., chunksize=1)``."""
    run = iterate_results("imap_unordered")
    return measure_pool(mp, method, run, chunk_sizes(iterations), 1000)


def map_items(pool: Any, count: int) -> None:
    """``pool.map(square, range(count))`` with the default chunksize, checked."""
    results = pool.map(square, range(count))
    if len(results) != count or results[-1] != (count - 1) ** 2:
        raise RuntimeError(f"pool.map of {count} items gave wrong results")


def pool_map(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of one ``pool.map(square, range(iterations))``, default chunksize.

    The default chunksize depends on the length (four chunks per worker), so
    the run is one map of all its items, not a map per chunk: one sample.
    """
    return measure_pool(mp, method, map_items, [iterations], max(1, iterations // 10))


def start_use_stop(ctx: Any, deadline: Deadline) -> None:
    """``Pool(2)``, its first result from ``apply(square, (3,))``, ``terminate()``, ``join()``."""
    deadline.renew("starting a pool and getting its first result")
    pool = ctx.Pool(POOL_PROCESSES)
    try:
        if pool.apply(square, (3,)) != 9:
            raise RuntimeError("the first result of a new pool was wrong")
    finally:
        deadline.renew("terminating and joining a new pool")
        pool.terminate()
        pool.join()


def pool_start(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per pool started, used once and stopped (:func:`start_use_stop`).

    One untimed cycle first (it starts the fork server, or the standard
    library's resource tracker, once per run).
    """
    from time import perf_counter

    ctx = mp.get_context(method)
    with Deadline(mp) as deadline:
        start_use_stop(ctx, deadline)
        samples = []
        for _ in range(iterations):
            began = perf_counter()
            start_use_stop(ctx, deadline)
            samples.append(perf_counter() - began)
    return samples


def make_lambda() -> Callable[[int], int]:
    """``lambda x: x * x``, made in this module (``__main__``, as a user's script makes one):
    pickle saves functions by name, and cannot find a lambda by its name."""
    return lambda x: x * x


def take_and_acknowledge(channel: Any, replies: Any, count: int) -> None:
    """Say ``"ready"`` on ``replies``, take ``count`` ``(str, lambda)`` items from ``channel``,
    check the last one, then say ``"done"``."""
    replies.put("ready")
    item = None
    for _ in range(count):
        item = channel.get()
    if not (isinstance(item, tuple) and item[0] == "x" * PAYLOAD_SIZE and item[1](3) == 9):
        replies.put(f"the last (str, lambda) item arrived wrong: {item!r}")
        return
    replies.put("done")


def queue_lambda(mp: ModuleType, method: str, count: int) -> list[float]:
    """Seconds per ``("x" * 256, lambda x: x * x)`` tuple put on a ``Queue()`` by this process
    and taken by a child (only a serializer that carries functions by value can pass them).

    This way round, unlike :func:`pass_between_processes`, the lambda is made in
    the script's ``__main__``, as users make them.  The child starts before
    the clock, which runs from its ``"ready"`` to its ``"done"`` after the last item.
    """
    from time import perf_counter

    ctx = mp.get_context(method)
    channel, replies = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=take_and_acknowledge, args=(channel, replies, count))
    p.start()
    try:
        if replies.get(timeout=POOL_DEADLINE) != "ready":
            raise RuntimeError("the benchmark's consumer did not say it was ready")
        item = ("x" * PAYLOAD_SIZE, make_lambda())
        began = perf_counter()
        for _ in range(count):
            channel.put(item)
        reply = replies.get(timeout=POOL_DEADLINE)
        seconds = perf_counter() - began
    finally:
        p.join(POOL_DEADLINE)
    if reply != "done":
        raise RuntimeError(reply)
    if p.exitcode != 0:
        raise RuntimeError(f"the benchmark's consumer exited with code {p.exitcode}")
    return [seconds / count]


LAMBDA_MAP_ITEMS = 10_000
"""Items of each map of :func:`pool_map_lambda`."""


def map_lambda(pool: Any, count: int) -> None:
    """``pool.map(lambda x: x * x, range(count))`` with the default chunksize, checked: a new
    lambda each time (:func:`make_lambda`), as a user's code makes one per call."""
    results = pool.map(make_lambda(), range(count))
    if len(results) != count or results[-1] != (count - 1) ** 2:
        raise RuntimeError(f"pool.map of a lambda over {count} items gave wrong results")


def pool_map_lambda(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of maps of :data:`LAMBDA_MAP_ITEMS` items (fewer if ``iterations``
    is) with a lambda, default chunksize, one sample per map: ``iterations`` items in all."""
    size = min(iterations, LAMBDA_MAP_ITEMS)
    return measure_pool(mp, method, map_lambda, [size] * -(-iterations // size), size)


class LokyPool:
    """A loky reusable executor of ``processes`` workers, with the calls of a ``Pool`` that
    :func:`measure_pool` makes: ``map`` (with ``Pool.map``'s default chunksize, where
    loky's is 1), ``terminate``, ``join``."""

    def __init__(self, method: str, processes: int) -> None:
        import loky

        self.processes = processes
        self.executor = loky.get_reusable_executor(max_workers=processes, context=method)

    def map(self, function: Callable[[Any], Any], items: Any, chunksize: int = 0) -> list[Any]:
        items = list(items)
        if not chunksize:
            chunksize, extra = divmod(len(items), self.processes * 4)
            chunksize += bool(extra)
        return list(self.executor.map(function, items, chunksize=max(1, chunksize)))

    def terminate(self) -> None:
        self.executor.shutdown(wait=True, kill_workers=True)

    def join(self) -> None:
        """Nothing: :meth:`terminate` waited for the workers."""


class LokyContext:
    """What ``get_context(method)`` gives for loky: its pools use that start method."""

    def __init__(self, method: str) -> None:
        self.method = method

    def Pool(self, processes: int) -> LokyPool:
        return LokyPool(self.method, processes)


class Loky:
    """loky in the place of ``mp`` for the pool cases: ``--impl loky``."""

    __name__ = "loky"

    def get_context(self, method: str) -> LokyContext:
        return LokyContext(method)

    def active_children(self) -> list[Any]:
        import multiprocessing  # loky's workers are multiprocessing's processes

        return multiprocessing.active_children()


SHORT_BEHIND_LONG = 1.0
"""Seconds of the long task of :func:`short_behind_long`: long enough that a map held up
behind it shows, short enough for a quick run."""


def short_behind_long_once(ctx: Any, deadline: Deadline) -> float:
    """The issue's scenario, once: seconds of a ``map`` of six short tasks, on a ``Pool(4)``
    that has mapped eight and runs one long task (``apply_async``) since 0.2 s.

    The pool is terminated at once after the map: the long task is not waited for.
    """
    from time import perf_counter, sleep

    deadline.renew("a map of short tasks behind a long one")
    pool = ctx.Pool(4)
    try:
        pool.map(square, range(8))
        pool.apply_async(sleep, (SHORT_BEHIND_LONG,))
        sleep(0.2)
        began = perf_counter()
        results = pool.map(square, range(6))
        seconds = perf_counter() - began
        if results != [x * x for x in range(6)]:
            raise RuntimeError("the map behind a long task gave wrong results")
    finally:
        deadline.renew("terminating and joining the pool")
        pool.terminate()
        pool.join()
    return seconds


def short_behind_long(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds of the second ``map`` of :func:`short_behind_long_once`, one sample per pool."""
    ctx = mp.get_context(method)
    with Deadline(mp) as deadline:
        return [short_behind_long_once(ctx, deadline) for _ in range(iterations)]


UNEVEN_SEED = 12
UNEVEN_MEAN = 0.002
"""Mean seconds of the short tasks of :func:`uneven_durations`."""


def uneven_durations(count: int, seed: int = UNEVEN_SEED) -> list[float]:
    """``count`` seeded, heavy-tailed task durations in seconds, the same for both libraries.

    Lognormal with a mean of 2 ms (sigma 1, capped at 50 ms), and one task in
    400 (at least one) of 100-300 ms at a random place.
    """
    import math
    import random

    rng = random.Random(seed)
    sigma = 1.0
    mu = math.log(UNEVEN_MEAN) - sigma * sigma / 2
    durations = [min(0.05, rng.lognormvariate(mu, sigma)) for _ in range(count)]
    for index in rng.sample(range(count), max(1, count // 400)):
        durations[index] = rng.uniform(0.1, 0.3)
    return durations


def timed_sleep(seconds: float) -> float:
    """Sleep ``seconds``; return the seconds it really took (a task of the uneven cases)."""
    from time import perf_counter, sleep

    began = perf_counter()
    sleep(seconds)
    return perf_counter() - began


def makespan_over_ideal(mp: ModuleType, method: str, count: int, imap: bool) -> list[float]:
    """The makespan of :func:`uneven_durations`'s ``count`` tasks on a ``Pool(2)``, divided by
    the ideal schedule's: the work the tasks took, divided by the workers, or the longest
    task if that is longer.  ``map`` with the default chunksize, or ``imap_unordered`` with
    chunksize 1 (``imap``); one sample.
    """
    from time import perf_counter

    durations = uneven_durations(count)
    with Deadline(mp) as deadline:
        deadline.renew(f"starting a pool ({method})")
        pool = mp.get_context(method).Pool(POOL_PROCESSES)
        try:
            wait_for_workers(pool)
            deadline.renew(f"an uneven {'imap_unordered' if imap else 'map'}")
            began = perf_counter()
            if imap:
                took = list(pool.imap_unordered(timed_sleep, durations, chunksize=1))
            else:
                took = pool.map(timed_sleep, durations)
            makespan = perf_counter() - began
        finally:
            deadline.renew("terminating and joining the pool")
            pool.terminate()
            pool.join()
    if len(took) != count:
        raise RuntimeError(f"the uneven map of {count} tasks gave {len(took)} results")
    ideal = max(sum(took) / POOL_PROCESSES, max(took))
    return [makespan / ideal]


def uneven_map(mp: ModuleType, method: str, count: int) -> list[float]:
    """``map`` of uneven tasks, default chunksize: see :func:`makespan_over_ideal`."""
    return makespan_over_ideal(mp, method, count, imap=False)


def uneven_imap_unordered(mp: ModuleType, method: str, count: int) -> list[float]:
    """``imap_unordered`` of uneven tasks, chunksize 1: see :func:`makespan_over_ideal`."""
    return makespan_over_ideal(mp, method, count, imap=True)


FIRST_USE_POOL = """\
import {module} as mp


def square(x):
    return x * x


if __name__ == "__main__":
    with mp.get_context({method!r}).Pool(4) as pool:
        assert pool.map(square, range(8)) == [x * x for x in range(8)]
"""

FIRST_USE_MANAGER = """\
import {module} as mp

if __name__ == "__main__":
    with mp.get_context({method!r}).Manager() as manager:
        assert len(manager.list(range(8))) == 8
"""

FIRST_USE_TIMEOUT = 60.0
"""Seconds one first-use program may take."""


def first_use_program(impl: str, kind: str, method: str) -> str:
    """The source of a first-use program: the ``kind`` (``"pool"``, ``"manager"``) of
    :data:`FIRST_USE_POOL` or :data:`FIRST_USE_MANAGER` for ``impl`` on ``method``."""
    module = "multiprocessing" if impl == "stdlib" else "procframe"
    source = FIRST_USE_POOL if kind == "pool" else FIRST_USE_MANAGER
    return source.format(module=module, method=method)


def first_use(impl: str, kind: str, method: str, iterations: int) -> list[float]:
    """Seconds of a whole fresh interpreter that runs :func:`first_use_program` as a script,
    one sample per process.

    Bytecode caching is on, as users run (``PYTHONDONTWRITEBYTECODE`` is dropped: without
    caches, each run compiles procframe's modules while the standard library's come
    compiled with Python); an untimed first run writes the caches.
    """
    import os
    import tempfile
    from time import perf_counter

    with tempfile.TemporaryDirectory(prefix="procframe-first-use-") as folder:
        script = os.path.join(folder, f"first_use_{kind}.py")
        with open(script, "w") as f:
            f.write(first_use_program(impl, kind, method))
        command = [sys.executable, script]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        run_program(command, env)  # untimed: writes the caches
        samples = []
        for _ in range(iterations):
            began = perf_counter()
            run_program(command, env)
            samples.append(perf_counter() - began)
    return samples


def run_program(command: list[str], env: dict[str, str]) -> None:
    """Run ``command`` to its end; raise if it fails or outlives :data:`FIRST_USE_TIMEOUT`.

    Waits in one blocking ``waitpid``: ``subprocess.run(timeout=...)`` polls with
    sleeps that double up to 50 ms, which rounds a program's time up to 64, 114,
    164 ms, ...
    """
    import subprocess
    import threading

    program = subprocess.Popen(command, env=env)
    watchdog = threading.Timer(FIRST_USE_TIMEOUT, program.kill)
    watchdog.start()
    try:
        code = program.wait()
    finally:
        watchdog.cancel()
    if code != 0:
        raise RuntimeError(f"{command[-1]} exited with code {code} (limit {FIRST_USE_TIMEOUT} s)")


class StartedManager:
    """A ``Manager()`` of the ``method`` context for one run of a case, started on entry
    (before the clock).

    On exit, whatever happened, it is shut down, then every child is joined.
    In that order: a child still using the server's objects after an error
    loses its connection with the server, fails and exits, so the joins return.
    """

    def __init__(self, mp: ModuleType, method: str) -> None:
        self.mp = mp
        self.method = method

    def __enter__(self) -> Any:
        self.manager = self.mp.get_context(self.method).Manager()
        return self.manager

    def __exit__(self, *exc_info: object) -> None:
        self.manager.shutdown()
        for child in self.mp.active_children():
            child.join()


def managed_queue_case(mp: ModuleType, method: str, count: int) -> list[float]:
    """``Queue()`` of a :class:`StartedManager`: see :func:`pass_between_processes`.

    Every ``put`` and ``get`` is a round trip to the manager's server.
    """
    with StartedManager(mp, method) as manager:
        return pass_between_processes(mp, method, count, "Queue", manager)


def managed_lock_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``Lock()`` of a :class:`StartedManager`, in one process: each call a round trip."""
    with StartedManager(mp, method) as manager:
        return acquire_release(manager.Lock(), iterations)


def managed_rlock_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``RLock()`` of a :class:`StartedManager`, in one process: each call a round trip."""
    with StartedManager(mp, method) as manager:
        return acquire_release(manager.RLock(), iterations)


def managed_condition_case(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``Condition()`` of a :class:`StartedManager` between this process and a child."""
    with StartedManager(mp, method) as manager:
        return interleave_with_child(mp.get_context(method), manager.Condition(), iterations)


def managed_list_read(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """``list(range(10))`` of a :class:`StartedManager`: each read a round trip."""
    with StartedManager(mp, method) as manager:
        return read_items(manager.list(range(SEQUENCE_LENGTH)), iterations)


ITERATED_ITEMS = 10_000
"""Integers in the managed list that :func:`managed_list_iterate` iterates over."""


def managed_list_iterate(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of ``for x in items``, ``items`` a managed list of (at most)
    :data:`ITERATED_ITEMS` integers: one sample per pass, passes enough for ``iterations``
    items.  :data:`WARM_UP` seconds of ``items[0]`` reads come first.
    """
    from time import perf_counter

    with StartedManager(mp, method) as manager:
        items = manager.list(range(min(iterations, ITERATED_ITEMS)))
        warm_until = perf_counter() + WARM_UP
        while perf_counter() < warm_until:
            _item = items[0]
        size = len(items)
        samples = []
        for _ in range(-(-iterations // size)):
            began = perf_counter()
            for _item in items:
                pass
            samples.append((perf_counter() - began) / size)
        return samples


PAGE = 4096
"""Bytes of a page: a receiver reads one byte of each page of a big item (:func:`touch`)."""

MEGABYTE = 1_000_000
"""The unit of the big cases' results: they report seconds per megabyte of payload moved."""

BIG_SIZES = {"64k": 64 << 10, "1m": 1 << 20, "16m": 16 << 20, "128m": 128 << 20}
"""The sizes of the big items, by the suffix of their cases' names."""

BIG_KINDS = ("bytes", "array")
"""A ``bytes`` object, or a float64 numpy array (numpy is needed only for these)."""

WARM_BYTES = 8 << 20
"""Bytes of items passed before the clock starts (at least two items): the first items pay
for first-time costs (imports, buffers grown, pages faulted in) that the steady state
does not."""


def _big_cap() -> int:
    import os  # loaded with the interpreter: no cost

    return int(os.environ.get("PROCFRAME_BENCH_BIG_CAP", "0"))


BIG_CAP = _big_cap()
"""The most bytes of any big item, 0 for no cap (``PROCFRAME_BENCH_BIG_CAP`` in the
environment sets it: the project's tests, which assert no figure, pass small items)."""


def capped(size: int) -> int:
    """``size``, at most :data:`BIG_CAP` bytes if there is a cap (a whole page, at least)."""
    return min(size, max(PAGE, BIG_CAP)) if BIG_CAP else size


BIG_DEADLINE = 60.0
"""Seconds a receiver waits for one big item from a ``Queue`` before it gives up."""


def warm_items(size: int) -> int:
    """Items of ``size`` bytes passed before the clock: :data:`WARM_BYTES`, at least two
    (the steady state of a stream: the buffers of one item reused for the next but one)."""
    return max(2, WARM_BYTES // size)


def make_big_item(kind: str, size: int) -> Any:
    """``size`` bytes, every one of them 1 (so every page is written): ``bytes``, or a
    float64 numpy array for ``kind`` ``"array"``."""
    if kind == "bytes":
        return b"\x01" * size
    import numpy

    array = numpy.empty(size // 8, dtype=numpy.float64)
    array.view(numpy.uint8).fill(1)
    return array


def touch(item: Any, size: int) -> None:
    """Read one byte of each page of ``item`` and check it: what a receiver does with each
    big item, the same for both libraries, so that a mapping filled lazily pays for its
    pages.  Raise if ``item`` is not ``size`` bytes of 1."""
    view = memoryview(item)
    if view.nbytes != size:
        raise RuntimeError(f"a big item arrived with {view.nbytes} bytes instead of {size}")
    read = view.cast("B")[::PAGE].tobytes()
    if read.count(1) != len(read):
        raise RuntimeError("a big item arrived with wrong contents")


def send_big(channel: Any, method: str, kind: str, size: int, count: int) -> None:
    """Make one big item, send ``"ready"``, the item ``count`` times, then ``None``."""
    send = getattr(channel, method)
    item = make_big_item(kind, size)
    send("ready")
    for _ in range(count):
        send(item)
    send(None)


EXTRAS: dict[str, float] = {}
"""Figures a case measured besides its samples, printed with its result (``first_item``)."""


def receive_big(get: Callable[[], Any], size: int, warm: int, count: int) -> list[float]:
    """Seconds per megabyte of ``count`` items of ``size`` bytes taken by ``get``, one sample
    per chunk, after ``warm`` items; each item is touched (:func:`touch`) and kept until the
    next one arrives.  The seconds from ``"ready"`` to the first item touched go to
    :data:`EXTRAS` as ``first_item``.
    """
    from time import perf_counter

    if get() != "ready":
        raise RuntimeError("the sender's first item was not 'ready'")
    began = perf_counter()
    item = get()
    touch(item, size)
    EXTRAS["first_item"] = perf_counter() - began
    for _ in range(warm - 1):
        item = get()
        touch(item, size)
    samples = []
    for chunk in chunk_sizes(count):
        began = perf_counter()
        for _ in range(chunk):
            item = get()
            touch(item, size)
        samples.append((perf_counter() - began) / (chunk * size / MEGABYTE))
    del item
    last = get()
    if last is not None:
        raise RuntimeError(f"expected the sentinel None after {count} items, got {last!r}")
    return samples


def pass_big(
    mp: ModuleType, method: str, count: int, kind: str, size: int, via: str
) -> list[float]:
    """Seconds per megabyte of big items passed from a child to this process by a ``via``
    (``"Queue"`` or ``"Pipe"``): see :func:`send_big` and :func:`receive_big`."""
    ctx = mp.get_context(method)
    if kind == "array":
        import numpy  # noqa: F401  (before the clock, and inherited by a forked sender)
    if via == "Pipe":
        reader, writer = ctx.Pipe(duplex=False)
        get, send = reader.recv, "send"
    else:
        queue = writer = ctx.Queue()

        def get() -> Any:
            return queue.get(timeout=BIG_DEADLINE)

        send = "put"
    warm = warm_items(size)
    p = ctx.Process(target=send_big, args=(writer, send, kind, size, warm + count))
    p.start()
    if via == "Pipe":
        writer.close()
    try:
        samples = receive_big(get, size, warm, count)
    finally:
        p.join(BIG_DEADLINE)
    if p.exitcode != 0:
        raise RuntimeError(f"the benchmark's sender exited with code {p.exitcode}")
    return samples


def identity(item: Any) -> Any:
    """The function of the big ``Pool.map`` cases: each item goes to a worker and back."""
    return item


def map_big(kind: str, size: int, count: int) -> Callable[[Any, int], None]:
    """``pool.map(identity, items)`` of up to ``count`` distinct big items (made now, before
    the clock), each result touched (:func:`touch`).

    Distinct: pickle writes an object it meets again in the same chunk of tasks as a
    reference to the first, so one item repeated would cross once per chunk.
    """
    items = [make_big_item(kind, size) for _ in range(count)]

    def run(pool: Any, n: int) -> None:
        for result in pool.map(identity, items[:n]):
            touch(result, size)

    return run


def pool_map_big(mp: ModuleType, method: str, count: int, kind: str, size: int) -> list[float]:
    """Seconds per megabyte of one ``pool.map`` of ``count`` big items (out and back, a
    megabyte of item counted once), on a ``Pool(2)``, after a warm-up (:func:`measure_pool`)."""
    warm = min(count, warm_items(size))
    seconds = measure_pool(mp, method, map_big(kind, size, count), [count], warm)
    return [item_seconds / (size / MEGABYTE) for item_seconds in seconds]


def memcpy(mp: ModuleType, method: str, count: int, size: int) -> list[float]:
    """Seconds per megabyte of copying ``size`` bytes into a buffer of this process,
    ``count`` times, one sample per chunk: the reference of the big rows, the same code for
    both implementations (``mp`` and ``method`` are not used)."""
    from time import perf_counter

    source = make_big_item("bytes", size)
    target = memoryview(bytearray(size))
    for _ in range(warm_items(size)):
        target[:] = source
    samples = []
    for chunk in chunk_sizes(count):
        began = perf_counter()
        for _ in range(chunk):
            target[:] = source
        samples.append((perf_counter() - began) / (chunk * size / MEGABYTE))
    return samples


def big_cases() -> dict[str, Case]:
    """The cases of the big table, by name: ``big_<queue|pipe|pool_map>_<kind>_<size>`` and
    ``memcpy_<size>``, the size a key of :data:`BIG_SIZES`."""
    cases: dict[str, Case] = {}

    def bind(function: Callable[..., list[float]], *args: Any) -> Case:
        return lambda mp, method, count: function(mp, method, count, *args)

    for name, uncapped in BIG_SIZES.items():
        size = capped(uncapped)
        cases[f"memcpy_{name}"] = bind(memcpy, size)
        for kind in BIG_KINDS:
            cases[f"big_queue_{kind}_{name}"] = bind(pass_big, kind, size, "Queue")
            cases[f"big_pipe_{kind}_{name}"] = bind(pass_big, kind, size, "Pipe")
            cases[f"big_pool_map_{kind}_{name}"] = bind(pool_map_big, kind, size)
    return cases


PSS_INTERVAL = 0.002
"""Seconds between two samples of the memory sampler (each sample also takes time: the
kernel walks the page tables of both processes)."""


def pss_bytes(pid: int) -> int:
    """The proportional set size of process ``pid`` in bytes (0 once it is gone): its
    resident pages, each page shared by n processes counted as 1/n."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # the process is gone
        pass
    return 0


def sample_pss(pids: Sequence[int]) -> int:
    """Sample the summed Pss of ``pids`` every :data:`PSS_INTERVAL` seconds until standard
    input closes; return the peak.  Runs in a process of its own (``--sample-pss``), so
    that no lock of the measured processes (their GIL) delays a sample."""
    import select

    peak = sum(pss_bytes(pid) for pid in pids)  # one sample before anyone goes on
    print("sampling", flush=True)
    while not select.select([sys.stdin], [], [], PSS_INTERVAL)[0]:
        peak = max(peak, sum(pss_bytes(pid) for pid in pids))
    return peak


class PssSampler:
    """A ``--sample-pss`` process that samples the summed Pss of ``pids`` until :meth:`stop`,
    which returns the peak in bytes."""

    def __init__(self, pids: Sequence[int]) -> None:
        import subprocess

        command = [sys.executable, __file__, "--sample-pss", *map(str, pids)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != "sampling\n":
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the memory sampler did not start")

    def stop(self) -> int:
        """Stop sampling; the peak of the summed Pss, in bytes."""
        stdout, _ = self.process.communicate(timeout=BIG_DEADLINE)
        if self.process.returncode != 0:
            raise RuntimeError(f"the memory sampler exited with code {self.process.returncode}")
        return int(stdout)


MEMORY_ITEM_BYTES = capped(1 << 30)
"""Bytes of the float64 array of :func:`peak_memory_queue`: 1 GiB (or :data:`BIG_CAP`)."""


def send_and_wait(queue: Any, done: Any, size: int) -> None:
    """Make a float64 array of ``size`` bytes, put it on ``queue``, drop it, and live on until
    ``done`` is set (an exited sender would hide what it still holds)."""
    item = make_big_item("array", size)
    queue.put(item)
    del item
    if not done.wait(BIG_DEADLINE):
        raise RuntimeError("the receiver of the big array never said it was done")


def peak_memory_once(ctx: Any, size: int) -> int:
    """The peak summed Pss, in bytes, of a child that sends one float64 array of ``size``
    bytes through a ``Queue`` and this process, which takes it and touches it."""
    import os

    queue, done = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=send_and_wait, args=(queue, done, size))
    p.start()
    try:
        sampler = PssSampler([os.getpid(), p.pid])
        try:
            item = queue.get(timeout=BIG_DEADLINE)
            touch(item, size)
            del item
            done.set()
            p.join(BIG_DEADLINE)
        finally:
            peak = sampler.stop()
    finally:
        done.set()
        p.join(BIG_DEADLINE)
    if p.exitcode != 0:
        raise RuntimeError(f"the benchmark's sender exited with code {p.exitcode}")
    return peak


def peak_memory_queue(mp: ModuleType, method: str, count: int) -> list[float]:
    """Peak bytes of sender plus receiver (Pss: pages both map count once) while one float64
    array of :data:`MEMORY_ITEM_BYTES` goes through a ``Queue``, one sample per array."""
    import numpy  # noqa: F401  (before the first sample, and inherited by a forked sender)

    ctx = mp.get_context(method)
    return [float(peak_memory_once(ctx, MEMORY_ITEM_BYTES)) for _ in range(count)]


DASK_ADDRESS_ENV = "PROCFRAME_DASK_ADDRESS"
"""The scheduler both sides of a dask case use: ``python -m procframe bench`` starts one
``LocalCluster`` per table and sets it."""


def dask_address() -> str:
    """The scheduler of the dask cases; a clear error if none was named."""
    import os

    address = os.environ.get(DASK_ADDRESS_ENV, "").strip()
    if not address:
        raise RuntimeError(
            f"the dask cases run on a cluster named by {DASK_ADDRESS_ENV} (python -m procframe "
            "bench --backend dask starts one): neither side may start a cluster of its own"
        )
    return address


class DaskTask:
    """A task in the place of a ``Process`` for Dask's side of :func:`pass_between_processes`:
    ``start`` submits ``target(*args)`` to a worker, ``join`` waits for its end."""

    def __init__(self, client: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.client = client
        self.target = target
        self.args = args
        self.future: Any = None
        self.exitcode: int | None = None

    def start(self) -> None:
        self.future = self.client.submit(self.target, *self.args, pure=False)

    def join(self) -> None:
        self.future.result(timeout=POOL_DEADLINE)
        self.exitcode = 0


class DaskClientPool:
    """Dask's own API with the calls of a ``Pool`` that the cases make: ``map`` is
    ``client.gather(client.map(...))`` (a task per item, whatever the chunksize), ``apply`` is
    ``client.submit(...).result()``; every task runs anew (``pure=False``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, function: Callable[[Any], Any], items: Any, chunksize: int = 0) -> list[Any]:
        futures = self.client.map(function, list(items), pure=False)
        return list(self.client.gather(futures))

    def apply(self, function: Callable[..., Any], args: tuple[Any, ...] = ()) -> Any:
        return self.client.submit(function, *args, pure=False).result(timeout=POOL_DEADLINE)

    def terminate(self) -> None:
        """Nothing: the cluster's workers outlive the pool, as procframe's dask Pool's do."""

    def join(self) -> None:
        """Nothing: see :meth:`terminate`."""


class DaskContext:
    """What ``get_context("dask")`` gives for Dask's side: a ``Pool`` of the cluster, its
    ``Queue`` (``distributed.Queue``), a task for a ``Process``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def Pool(self, processes: int) -> DaskClientPool:
        return DaskClientPool(self.client)

    def Queue(self) -> Any:
        from distributed import Queue

        return Queue(client=self.client)

    def Process(self, target: Callable[..., Any], args: tuple[Any, ...] = ()) -> DaskTask:
        return DaskTask(self.client, target, args)


class Dask:
    """Dask's own API in the place of ``mp`` for the dask cases: ``--impl dask``.  Its client
    connects to the cluster of :func:`dask_address` on first use."""

    __name__ = "dask"

    def __init__(self) -> None:
        self.client: Any = None

    def get_context(self, method: str) -> DaskContext:
        if self.client is None:
            from distributed import Client

            self.client = Client(dask_address(), set_as_default=False, timeout=30)
        return DaskContext(self.client)

    def active_children(self) -> list[Any]:
        """None: the cluster's processes belong to the process that hosts it."""
        return []

    def close(self) -> None:
        if self.client is not None:
            self.client.close(timeout=30)
            self.client = None


def on_dask(case: Case) -> Case:
    """``case`` on the dask backend's cluster: procframe's side imports the backend's packages
    before the clock (noting, as :func:`load_serializer` does, that ``distributed`` loads the
    standard library's ``multiprocessing``: no doing of procframe's); Dask's side closes its
    client after the case."""

    def run(mp: ModuleType, method: str, iterations: int) -> list[float]:
        dask_address()
        if mp.__name__ not in ("procframe", "dask"):
            raise RuntimeError(f"the dask cases run procframe or Dask, not {mp.__name__}")
        if mp.__name__ == "procframe":
            loaded = "multiprocessing" in sys.modules
            import distributed  # noqa: F401
            import procframe_dask  # noqa: F401

            if not loaded and "multiprocessing" in sys.modules:
                LOADED_MULTIPROCESSING.append("distributed")
            return case(mp, method, iterations)
        try:
            return case(mp, method, iterations)
        finally:
            mp.close()

    return run


def map_items_chunksize_1(pool: Any, count: int) -> None:
    """``pool.map(square, range(count), chunksize=1)``, checked: a task per item."""
    results = pool.map(square, range(count), chunksize=1)
    if len(results) != count or results[-1] != (count - 1) ** 2:
        raise RuntimeError(f"pool.map of {count} items gave wrong results")


DASK_WARM_ITEMS = 200
"""Items of each map of the warm-up of the dask map cases."""


def dask_pool_map(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of one ``pool.map(square, range(iterations), chunksize=1)`` on a
    ``Pool(2)`` of the cluster: a Dask task per item, as ``client.map``'s."""
    sizes = [iterations]
    return measure_pool(mp, method, map_items_chunksize_1, sizes, DASK_WARM_ITEMS)


def dask_pool_map_chunked(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per item of one ``pool.map(square, range(iterations))``, default chunksize
    (Dask's side: ``client.map``, a task per item)."""
    return measure_pool(mp, method, map_items, [iterations], DASK_WARM_ITEMS)


def dask_apply(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per ``pool.apply(square, (x,))`` round trip on the cluster (Dask's side:
    ``client.submit(square, x).result()``), one sample per chunk."""
    return measure_pool(mp, method, apply_round_trips, chunk_sizes(iterations), 5)


def dask_queue(mp: ModuleType, method: str, count: int) -> list[float]:
    """Seconds per 256-byte string passed through a ``Queue()`` of the cluster from a producer
    on a worker (procframe: a ``Process``; Dask: a task putting on a ``distributed.Queue``)
    to this process: see :func:`pass_between_processes`."""
    return pass_between_processes(mp, method, count, "Queue")


def serve_dask_cluster(workers: int) -> int:
    """``--dask-cluster N``: start a ``LocalCluster`` of ``N`` worker processes of one thread,
    print its scheduler's address as a JSON line once they all run, and close it when stdin
    closes (``python -m procframe bench`` hosts the dask table's cluster this way)."""
    import json

    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=POOL_DEADLINE)
        print(json.dumps({"address": cluster.scheduler_address}), flush=True)
        sys.stdin.read()
    return 0


CASES: dict[str, Case] = {
    "start_join": start_join,
    "thread_queue": thread_queue,
    "queue": queue_case,
    "simple_queue": simple_queue_case,
    "pipe": pipe_case,
    "thread_lock": thread_lock,
    "lock": lock_case,
    "thread_rlock": thread_rlock,
    "rlock": rlock_case,
    "thread_condition": thread_condition,
    "condition": condition_case,
    "list_read": list_read,
    "raw_array_read": raw_array_read,
    "array_read": array_read,
    "pool_apply": pool_apply,
    "pool_imap": pool_imap,
    "pool_imap_unordered": pool_imap_unordered,
    "pool_map": pool_map,
    "pool_start": pool_start,
    "pool_short_behind_long": short_behind_long,
    "pool_uneven_map": uneven_map,
    "pool_uneven_imap_unordered": uneven_imap_unordered,
    "managed_queue": managed_queue_case,
    "managed_lock": managed_lock_case,
    "managed_rlock": managed_rlock_case,
    "managed_condition": managed_condition_case,
    "managed_list_read": managed_list_read,
    "managed_list_iterate": managed_list_iterate,
    **big_cases(),
    "big_memory_queue": peak_memory_queue,
    "queue_lambda": queue_lambda,
    "pool_map_lambda": pool_map_lambda,
    "dask_pool_map": on_dask(dask_pool_map),
    "dask_pool_map_chunked": on_dask(dask_pool_map_chunked),
    "dask_apply": on_dask(dask_apply),
    "dask_queue": on_dask(dask_queue),
}

SERIALIZERS = ("pickle", "cloudpickle", "dill")
"""procframe's built-in serializers: the serializers table runs cases under each."""

SERIALIZED_CASES = (
    *("queue", "simple_queue", "pipe", "pool_apply", "pool_imap", "pool_map"),
    *("queue_lambda", "pool_map_lambda"),
)


def with_serializer(case: Case, serializer: str) -> Case:
    """``case``, procframe's serializer chosen first (``set_serializer``: its children and
    pool workers use it too); the other implementations run with their own."""

    def run(mp: ModuleType, method: str, iterations: int) -> list[float]:
        if mp.__name__ == "procframe":
            mp.set_serializer(serializer)
            load_serializer(serializer)
        return case(mp, method, iterations)

    return run


LOADED_MULTIPROCESSING: list[str] = []
"""The serializer's package, if importing it loaded the standard library's ``multiprocessing``."""


def load_serializer(serializer: str) -> None:
    """Import the package of procframe's ``serializer`` now, before the clock, and note in
    :data:`LOADED_MULTIPROCESSING` if that loaded ``multiprocessing``: dill imports
    ``multiprocessing.reduction`` to register its types, which is no doing of procframe's."""
    if serializer == "pickle":
        return
    import importlib

    loaded = "multiprocessing" in sys.modules
    importlib.import_module(serializer)
    if not loaded and "multiprocessing" in sys.modules:
        LOADED_MULTIPROCESSING.append(serializer)


CASES.update(
    {
        f"{name}[{serializer}]": with_serializer(CASES[name], serializer)
        for name in SERIALIZED_CASES
        for serializer in SERIALIZERS
    }
)
"""The cases of the serializers table: ``<case>[<serializer>]``."""


FIRST_USES = {"first_use_pool": "pool", "first_use_manager": "manager"}
"""The cases that time whole programs (:func:`first_use`), by the kind of program: the
harness imports neither implementation for them."""


def import_implementation(impl: str) -> Any:
    """``procframe``, the standard library's ``multiprocessing``, ``multiprocess`` or
    :class:`Loky`, by ``--impl`` name."""
    if impl == "stdlib":
        import multiprocessing

        return multiprocessing
    if impl == "multiprocess":
        import multiprocess

        return multiprocess
    if impl == "loky":
        return Loky()
    if impl == "dask":
        return Dask()
    import procframe

    return procframe


def summary(
    impl: str, case: str, method: str, iterations: int, samples: list[float]
) -> dict[str, object]:
    """The JSON result of one run: statistics of its samples, in seconds per operation, and
    procframe's serializer where procframe ran in this process."""
    import statistics

    procframe = sys.modules.get("procframe") if impl == "procframe" else None

    return {
        "impl": impl,
        "case": case,
        "method": method,
        "iterations": iterations,
        "samples": len(samples),
        "median": statistics.median(samples),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "multiprocessing_loaded": "multiprocessing" in sys.modules and not LOADED_MULTIPROCESSING,
        **(
            {"multiprocessing_loaded_by": LOADED_MULTIPROCESSING[0]}
            if LOADED_MULTIPROCESSING
            else {}
        ),
        **({"serializer": procframe.get_serializer()} if procframe is not None else {}),
        **EXTRAS,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one case and print its result as one JSON line."""
    import argparse

    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["--sample-pss"]:  # the memory sampler of PssSampler
        print(sample_pss([int(pid) for pid in arguments[1:]]), flush=True)
        return 0
    if arguments[:1] == ["--dask-cluster"]:  # the dask table's cluster, hosted for the bench
        return serve_dask_cluster(int(arguments[1]))
    parser = argparse.ArgumentParser(prog="python benchmarks/harness.py")
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    parser.add_argument("--case", choices=sorted([*CASES, *FIRST_USES]), required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--iterations", type=int, required=True)
    args = parser.parse_args(arguments)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.case in FIRST_USES:
        samples = first_use(args.impl, FIRST_USES[args.case], args.method, args.iterations)
    else:
        mp = import_implementation(args.impl)
        samples = CASES[args.case](mp, args.method, args.iterations)
    # Imported only now: every module loaded before the measurement makes each fork dearer.
    import json

    print(
        json.dumps(summary(args.impl, args.case, args.method, args.iterations, samples)), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
