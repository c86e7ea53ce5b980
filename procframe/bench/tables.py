"""The benchmark's tables: what is measured, in which unit, and the target ratio of each row.

Every ratio is procframe / multiprocessing in the table's unit.  A table of
durations is lower-is-better, a table of rates higher-is-better, and a row's
target bounds its ratio from the matching side.  The rule "no ratio below
1.0 anywhere" (procframe is never slower than the standard library) is kept by
the targets themselves: none is on the wrong side of its table's
``loosest_target``, which :meth:`Table.__post_init__` checks.  That is 1.0
for every table but :data:`LOCK_PAIRS`, where the issue sets 0.9 and the
ratio is noise around 1.0 (see :data:`LOCKS`).  Reference rows have no
target.  A row may also bound procframe's own value (``limit``), or its share
of a reference row of the same run (``min_share``, :data:`BIG`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from procframe.bench.requirements import (
    AVAILABLE_MEMORY,
    CLOUDPICKLE,
    DILL,
    DISTRIBUTED,
    LOKY,
    MULTIPROCESS,
    NUMPY,
    PROCFRAME_DASK,
    PSS,
    REQUIREMENTS,
)

STDLIB_METHODS = ("fork", "spawn", "forkserver")
"""The start methods of the standard library: the backends that can be compared."""

DASK = "dask"
"""procframe's dask backend (``plugins/procframe-dask``), and the peer its table compares it
with: Dask's own API on the same cluster."""

CLUSTER_BACKENDS = (DASK,)
"""The backends of a cluster, measured against the cluster's own API (not the standard
library's): only when ``--backend`` or ``--table`` names them."""

STDLIB = "stdlib"
PEERS = {STDLIB: "multiprocessing", MULTIPROCESS: "multiprocess", LOKY: "loky", DASK: "Dask"}
"""The implementations procframe is compared with (the harness's ``--impl``), and the names
the tables print for them."""

MEGABYTE = 1_000_000
"""Bytes of the megabyte of :attr:`Unit.MEGABYTES_PER_SECOND` (MB/s, as ``dd`` and the
issues count)."""

GIB = 1 << 30


class Unit(enum.Enum):
    """What a table's values are, which decides which way is better.

    The harness reports seconds per operation (a megabyte moved, for
    :attr:`MEGABYTES_PER_SECOND`); :meth:`from_seconds` turns them into the
    table's unit.  For :attr:`TIMES_IDEAL` and :attr:`BYTES` it reports the
    value itself.
    """

    SECONDS = "seconds per operation"
    PER_SECOND = "operations per second"
    TIMES_IDEAL = "times the ideal"
    """A makespan divided by the ideal schedule's: the harness reports the factor itself."""
    MEGABYTES_PER_SECOND = "megabytes of payload per second"
    """MB/s, a megabyte being :data:`MEGABYTE` bytes of the items passed (not of their
    pickles, nor of what a transport adds): the harness reports seconds per megabyte."""
    BYTES = "bytes"
    """An amount of memory, lower is better: the harness reports the bytes themselves."""

    @property
    def higher_is_better(self) -> bool:
        """True for a rate, False for a duration, a factor of the ideal or memory."""
        return self in (Unit.PER_SECOND, Unit.MEGABYTES_PER_SECOND)

    def from_seconds(self, seconds: float) -> float:
        """A harness result, seconds per operation (a factor for :attr:`TIMES_IDEAL`, bytes
        for :attr:`BYTES`), in this unit."""
        return 1.0 / seconds if self.higher_is_better else seconds

    def meets(self, ratio: float, target: float) -> bool:
        """True if ``ratio``, to the two decimals printed, is on the good side of ``target``."""
        shown = round(ratio, 2)
        return shown >= target if self.higher_is_better else shown <= target


@dataclass(frozen=True)
class Row:
    """One thing measured on one backend, on procframe and on the standard library."""

    backend: str
    case: str
    """The harness case that measures it."""
    iterations: int
    """Operations per harness run: processes started, objects passed, ..."""
    quick_iterations: int
    target: float | None
    """The bound of the ratio procframe / multiprocessing; None for a reference row."""
    label: str = ""
    """What the row measures within its backend, in the table's label column."""
    unit: Unit | None = None
    """The row's own unit, where it is not its table's."""
    limit: float | None = None
    """A bound of procframe's own value, in the row's unit, besides (or instead of) the
    ratio's ``target``: a row meets its targets only if it meets both."""
    share_of: str = ""
    """The label of the reference row (same table and backend) that ``min_share`` compares
    procframe's value with, measured in the same run."""
    min_share: float | None = None
    """The least share of the ``share_of`` row's procframe value that procframe's value
    must reach (a third target, besides ``target`` and ``limit``)."""
    quick: bool = True
    """Whether a ``--quick`` run measures the row."""
    requires: tuple[str, ...] = ()
    """What the machine needs for the row (:data:`procframe.bench.requirements.REQUIREMENTS`):
    without it, the row is skipped, and the report says why."""
    versus: str = STDLIB
    """The implementation procframe is compared with (the harness's ``--impl``): the standard
    library, or a peer (:data:`PEERS`) where the standard library cannot run the row."""
    cannot: str = ""
    """Why neither side can run the row: it is shown, with that reason, and never measured."""


@dataclass(frozen=True)
class Table:
    """A set of rows with one unit; ``label_header`` names the rows' labels, if they have any."""

    key: str
    title: str
    unit: Unit
    rows: tuple[Row, ...]
    label_header: str = ""
    note: str = ""
    """What the title leaves out, printed in its parentheses."""
    loosest_target: float = 1.0
    """The loosest target a row may have: 1.0, procframe never slower than the standard library.

    A table sets it past 1.0 (below for a rate, above for a duration) only
    where an issue sets a looser bound for something procframe cannot make
    faster, and says why in its rows' docstring (:data:`LOCKS`).
    """
    quick: bool = True
    """Whether a ``--quick`` run that does not name the table (``--table``) measures it."""
    backend_limit: int | None = None
    """How many of the chosen backends the table measures (the first ones) unless
    ``--backend`` names them; None for all."""
    max_repeats: int | None = None
    """Runs per implementation at most, unless ``--repeat`` says otherwise: for a table whose
    runs are long."""
    share_header: str = ""
    """The header of the column of shares (``min_share``), shown if a row has one."""
    versus_header: str = PEERS[STDLIB]
    """The header of the column of the values of the implementations procframe is compared
    with (:attr:`Row.versus`)."""
    interleaves_shares: bool = False
    """Whether each reference row is measured run by run in turn with the rows bounded by a
    share of it (``min_share``): a share of two figures taken minutes apart on a busy machine
    would measure the machine."""
    default_backend: str = ""
    """The backend the table measures unless ``--backend`` names others, where it is available
    (else the first of them); "" for the first ones, up to ``backend_limit``."""
    cluster: str = ""
    """The cluster that every harness run of the table shares: :data:`DASK` for one Dask
    ``LocalCluster``, started for the table and closed after it
    (:mod:`procframe.bench.cluster`); "" for none."""

    def __post_init__(self) -> None:
        if not self.unit.meets(1.0, self.loosest_target):
            raise ValueError(f"{self.key}: a loosest target stricter than 1.0 makes no sense")
        for row in self.rows:
            if row.versus not in PEERS:
                raise ValueError(f"{self.key}: {row.label} is compared with unknown {row.versus}")
            self._check_share(row)
            unknown = [name for name in row.requires if name not in REQUIREMENTS]
            if unknown:
                raise ValueError(f"{self.key}: {row.label} requires unknown {unknown}")
        for row in self.rows:
            loosest = self.loosest_of(self.unit_of(row))
            if row.target is not None and not self.unit_of(row).meets(row.target, loosest):
                raise ValueError(
                    f"{self.key}: the target of {row.backend} {row.label} allows procframe "
                    "to be slower than the standard library beyond the table's loosest target, "
                    f"{self.loosest_target:.2f}"
                )

    def loosest_of(self, unit: Unit) -> float:
        """The loosest target of a row in ``unit``: the table's, for a unit that is better
        the same way as the table's; its reciprocal, the same slack, for the other way (a
        rate's 0.9 is a duration's 1/0.9)."""
        if unit.higher_is_better == self.unit.higher_is_better:
            return self.loosest_target
        return 1.0 / self.loosest_target

    def _check_share(self, row: Row) -> None:
        """A row's ``min_share`` needs a reference row, of its backend, measured with it."""
        if (row.min_share is None) != (not row.share_of):
            raise ValueError(f"{self.key}: {row.label} needs both share_of and min_share")
        if row.min_share is None:
            return
        if not 0 < row.min_share <= 1:
            raise ValueError(f"{self.key}: {row.label} has a share beyond (0, 1]")
        references = [r for r in self.rows if (r.backend, r.label) == (row.backend, row.share_of)]
        if len(references) != 1:
            raise ValueError(f"{self.key}: {row.label} refers to no row {row.share_of!r}")
        (reference,) = references
        if reference.requires or (row.quick and not reference.quick):
            raise ValueError(f"{self.key}: {row.share_of} is not measured wherever {row.label} is")

    def unit_of(self, row: Row) -> Unit:
        """The unit of ``row``'s values: its own, or else the table's."""
        return row.unit or self.unit


START_JOIN = Table(
    key="start_join",
    title="Process start+join latency",
    unit=Unit.SECONDS,
    rows=(
        Row("fork", "start_join", iterations=200, quick_iterations=50, target=1.0),
        Row("spawn", "start_join", iterations=20, quick_iterations=6, target=0.8),
        Row("forkserver", "start_join", iterations=100, quick_iterations=30, target=1.0),
    ),
)

OBJECTS = (
    # label, harness case, objects per run (full, quick), target
    ("queue.Queue", "thread_queue", 200_000, 50_000, None),
    ("Queue", "queue", 150_000, 40_000, 2.0),
    ("SimpleQueue", "simple_queue", 200_000, 50_000, 1.5),
    ("Pipe", "pipe", 200_000, 50_000, 1.5),
)
"""The rows of :data:`OBJECTS_PASSED` on every backend.

``queue.Queue`` between two threads of one process is the reference row: the
same standard-library code runs on both sides, so its ratio shows the
machine's noise.  It involves no backend, yet it is measured with each
backend's rows, at the same time as they are.
"""

OBJECTS_PASSED = Table(
    key="objects",
    title="Objects passed between processes per second",
    note="256-byte strings",
    unit=Unit.PER_SECOND,
    label_header="object",
    rows=tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for backend in STDLIB_METHODS
        for label, case, full, quick, target in OBJECTS
    ),
)

LOCKS = (
    # label, harness case, pairs per run (full, quick), target
    ("threading.Lock", "thread_lock", 500_000, 100_000, None),
    ("Lock", "lock", 500_000, 100_000, 0.9),
    ("threading.RLock", "thread_rlock", 500_000, 100_000, None),
    ("RLock", "rlock", 500_000, 100_000, 0.9),
)
"""The rows of :data:`LOCK_PAIRS` on every backend.

The ``threading`` rows are references (the same code on both sides: their
ratios show the noise).  Issue 4 asks for ``Lock``/``RLock`` >= 0.9x the
standard library's, and that is the target: it is the one table whose
``loosest_target`` (see :class:`Table`) is below 1.0.  An uncontended
acquire/release pair runs, on both sides, the same C code (the methods of
``_multiprocessing.SemLock``, bound on the lock), so the ratio is noise
around 1.0 that procframe cannot move above it; a target of 1.0 would turn
that noise into misses.
"""

LOCK_PAIRS = Table(
    key="locks",
    title="Lock acquire/release pairs per second",
    note="in one process",
    unit=Unit.PER_SECOND,
    label_header="lock",
    loosest_target=0.9,
    rows=tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for backend in STDLIB_METHODS
        for label, case, full, quick, target in LOCKS
    ),
)

CONDITIONS = (
    # label, harness case, turns per run (full, quick), target
    ("threading.Condition", "thread_condition", 10_000, 3_000, None),
    ("Condition", "condition", 10_000, 3_000, 1.5),
)
"""The rows of :data:`CONDITION_WAITS` on every backend.

``threading.Condition`` between two threads of one process is the reference;
``Condition`` is between the benchmark's process and a child.
"""

CONDITION_WAITS = Table(
    key="conditions",
    title="Condition waits/notifies per second",
    note="interleaved by two processes; the reference by two threads",
    unit=Unit.PER_SECOND,
    label_header="condition",
    rows=tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for backend in STDLIB_METHODS
        for label, case, full, quick, target in CONDITIONS
    ),
)

SEQUENCES = (
    # label, harness case, reads per run (full, quick), target
    ("list", "list_read", 3_000_000, 500_000, None),
    ("RawArray", "raw_array_read", 3_000_000, 500_000, 1.0),
    ("Array", "array_read", 1_000_000, 200_000, 1.0),
)
"""The rows of :data:`SEQUENCE_READS` on every backend: the documented sequence benchmark.

Each reads ``seq[5]`` of a ten-integer sequence in a loop: a ``list`` (the
reference: the same code on both sides), ``RawArray('i', 10)`` (no lock) and
``Array('i', 10)`` (each read takes its lock, a new ``RLock``).  The arrays
come from the backend's context.
"""

SEQUENCE_READS = Table(
    key="sequences",
    title="Integers read per second",
    note="seq[5] of 10 ints, in one process",
    unit=Unit.PER_SECOND,
    label_header="sequence",
    rows=tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for backend in STDLIB_METHODS
        for label, case, full, quick, target in SEQUENCES
    ),
)

POOL_STARTS = {"fork": (50, 15), "spawn": (10, 4), "forkserver": (30, 10)}
"""Pools started per run of the start-up row on each backend (full, quick): a spawned pool
takes far longer to start."""

POOL_START_LABEL = "pool starts: 1 apply, terminate"

POOL_OPERATIONS = (
    # label, harness case, operations per run (full, quick), target
    ("apply round trips", "pool_apply", 2_000, 600, 2.0),
    ("imap items, chunksize 1", "pool_imap", 30_000, 10_000, 2.0),
    ("imap_unordered items, chunksize 1", "pool_imap_unordered", 30_000, 10_000, 2.0),
    ("map items, default chunksize", "pool_map", 1_000_000, 250_000, 1.0),
)
"""The rows of :data:`POOL` on every backend, but its start-up row.

Each runs ``square(x) = x * x`` in a ``Pool(2)`` of the backend's context,
already started.  ``apply`` is a latency, shown as its rate: round trips per
second, so the issue's "at most 0.5x the standard library's latency" is a
ratio of at least 2.0.  ``imap`` and ``imap_unordered`` are iterated to their
ends, a new one per sample; ``map`` is one map of 1,000,000 items (250,000
with ``--quick``).
"""

POOL_WORKLOADS = (
    # label, harness case, operations per run (full, quick), unit, target, limit
    ("short tasks behind a long one, s", "pool_short_behind_long", 3, 1, Unit.SECONDS, None, 0.05),
    ("uneven map, x ideal", "pool_uneven_map", 2_000, 500, Unit.TIMES_IDEAL, 1.0, 1.10),
    (
        "uneven imap_unordered chunksize 1, x ideal",
        "pool_uneven_imap_unordered",
        2_000,
        500,
        Unit.TIMES_IDEAL,
        1.0,
        1.10,
    ),
    ("first use of Pool(4), s per program", "first_use_pool", 5, 2, Unit.SECONDS, 1.0, None),
    ("first use of Manager(), s per program", "first_use_manager", 5, 2, Unit.SECONDS, 1.0, None),
)
"""The rows of :data:`POOL` on every backend about uneven work and first use, lower is better.

"short tasks behind a long one" is issue 12's scenario: a ``Pool(4)`` runs
one long ``apply_async`` task (1 s) and then maps six short ones; the value
is the seconds of that map, one pool per operation, bounded at 50 ms (the
standard library takes about 1 ms: no ratio target).  The "uneven" rows map
2,000 seeded heavy-tailed sleeps (lognormal, mean 2 ms, one in 400 of
100-300 ms; 500 with ``--quick``) on a ``Pool(2)``, as makespan / ideal (the
tasks' total time over the workers, or the longest task): at most 1.10 and
never worse than the standard library.  The "first use" rows time a whole
fresh interpreter running a script that makes a ``Pool(4)`` and maps 8
items, or starts a ``Manager()`` and makes one call, with bytecode cached.
"""


def pool_rows(backend: str) -> tuple[Row, ...]:
    """The rows of :data:`POOL` on ``backend``: the operations as rates, then the workloads."""
    rates = (
        *POOL_OPERATIONS,
        (POOL_START_LABEL, "pool_start", *POOL_STARTS[backend], 1.0),
    )
    return tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for label, case, full, quick, target in rates
    ) + tuple(
        Row(backend, case, full, quick, target, label=label, unit=unit, limit=limit)
        for label, case, full, quick, unit, target, limit in POOL_WORKLOADS
    )


POOL = Table(
    key="pool",
    title="Pool operations per second",
    note="Pool(2) of the backend, trivial function; latencies as rates",
    unit=Unit.PER_SECOND,
    label_header="operation",
    rows=tuple(row for backend in STDLIB_METHODS for row in pool_rows(backend)),
)
"""procframe's ``Pool`` against ``multiprocessing.Pool``, per backend.

The start-up row times a whole cycle: create ``Pool(2)``, get the result of
one ``apply``, ``terminate()`` and ``join()``; its rate is pools started per
second, and the issue asks for procframe no slower (1.0).  Every step of a
pool case is bounded by the harness (``POOL_DEADLINE``): a hung pool fails
the run instead of hanging it.  The rows of :data:`POOL_WORKLOADS` follow.
"""

MANAGED = (
    # label, harness case, operations per run (full, quick), target
    ("Queue managed by server", "managed_queue", 10_000, 3_000, 1.0),
    ("Lock managed by server", "managed_lock", 10_000, 3_000, 1.0),
    ("RLock managed by server", "managed_rlock", 10_000, 3_000, 1.0),
    ("Condition managed by server", "managed_condition", 3_000, 1_000, 1.0),
    ("list managed by server", "managed_list_read", 20_000, 5_000, 1.0),
    ("list managed by server, iterated", "managed_list_iterate", 30_000, 10_000, 1.0),
)
"""The rows of :data:`MANAGED_BY_SERVER` on every backend.

Each measures an object of a ``Manager()`` of the backend's context as the
unmanaged row of another table measures its own: 256-byte strings passed
from a child to this process (``Queue``, as in :data:`OBJECTS_PASSED`), lock
pairs in one process (:data:`LOCK_PAIRS`), waits interleaved by this process
and a child (:data:`CONDITION_WAITS`), ``seq[5]`` of ``list(range(10))``
(:data:`SEQUENCE_READS`); ``for x in items`` over a list of 10,000 integers, one
item an operation (each ``next`` reads the server's list, as the standard
library's).  The server starts before the clock and is shut
down after it.
"""

MANAGED_BY_SERVER = Table(
    key="managed",
    title="Operations per second on objects managed by server",
    note="Manager() of the backend; each call a round trip to its server",
    unit=Unit.PER_SECOND,
    label_header="object",
    rows=tuple(
        Row(backend, case, iterations=full, quick_iterations=quick, target=target, label=label)
        for backend in STDLIB_METHODS
        for label, case, full, quick, target in MANAGED
    ),
)

MIB = 1 << 20

BIG_SIZES = (
    # label, suffix of the harness cases, bytes, items per run (full, quick), in --quick
    ("64 KiB", "64k", 64 << 10, 400, 100, False),
    ("1 MiB", "1m", MIB, 64, 16, True),
    ("16 MiB", "16m", 16 * MIB, 8, 3, True),
    ("128 MiB", "128m", 128 * MIB, 6, 1, False),
)
"""The item sizes of :data:`BIG`: 8 to 32 MiB of payload per run, 768 MiB for 128 MiB (a
stream of them, not one or two items that pay for first use)."""

BIG_OBJECTS = (
    # label, harness case, least share of memcpy for arrays of SHARE_FROM bytes and more
    ("Queue", "big_queue", 0.4),
    ("Pipe", "big_pipe", 0.4),
    ("Pool.map identity", "big_pool_map", None),
)

BIG_KINDS = (
    # label, harness kind, requirements
    ("bytes", "bytes", ()),
    ("float64 array", "array", (NUMPY,)),
)

MEMCPY_TIMES = 10
"""Copies per item passed in a run of a memcpy row: a copy takes about a tenth of the time
of a pass, and a reference measured too briefly would make every share noisy."""

BIG_TARGET = 3.0
"""The ratio issue 14 asks of the big rows of :data:`BIG_TARGET_FROM` bytes and more."""

BIG_TARGET_FROM = MIB

SHARE_FROM = 16 * MIB
"""The least size of the array rows whose share of memcpy issue 14 bounds."""


def big_rows(backend: str) -> tuple[Row, ...]:
    """The rows of :data:`BIG` on ``backend``: per size, the memcpy reference, then each
    object with each kind of item."""
    rows: list[Row] = []
    for size, suffix, nbytes, full, quick, in_quick in BIG_SIZES:
        memcpy = f"memcpy {size}"
        copies = (MEMCPY_TIMES * full, MEMCPY_TIMES * quick)
        rows.append(Row(backend, f"memcpy_{suffix}", *copies, None, memcpy, quick=in_quick))
        target = BIG_TARGET if nbytes >= BIG_TARGET_FROM else 1.0
        for label, case, share in BIG_OBJECTS:
            for kind, harness_kind, requires in BIG_KINDS:
                bounded = share is not None and harness_kind == "array" and nbytes >= SHARE_FROM
                row = Row(backend, f"{case}_{harness_kind}_{suffix}", full, quick, target)
                rows.append(
                    replace(
                        row,
                        label=f"{label}, {kind} {size}",
                        share_of=memcpy if bounded else "",
                        min_share=share if bounded else None,
                        quick=in_quick,
                        requires=requires,
                    )
                )
    return tuple(rows)


BIG = Table(
    key="big",
    title="Big items passed per second, MB/s of payload",
    note=(
        "child to parent, each item read a byte per page; Pool.map: out and back; "
        "of memcpy: procframe over memcpy of the same size"
    ),
    unit=Unit.MEGABYTES_PER_SECOND,
    label_header="object, item",
    rows=tuple(row for backend in STDLIB_METHODS for row in big_rows(backend)),
    backend_limit=1,
    max_repeats=3,
    share_header="of memcpy",
)
"""Issue 14's table: bytes and float64 numpy arrays through ``Queue``, ``Pipe`` and
``Pool.map``, with a memcpy of each size as reference (the same code for both
implementations: its ratio shows the noise).

A run passes one item many times from a child to this process (``Pool.map``:
distinct items, out to a worker and back), after 8 MiB of warm-up (at least
an item); each item taken is read, one byte per page, and kept until the next
arrives.  The path does not depend on the start method once the child runs,
so the table measures one backend (the first) unless ``--backend`` names
others, and ``--quick`` measures only its 1 MiB and 16 MiB rows.  The targets
are the issue's: every row >= 1.0, rows of 1 MiB and more >= 3.0, and arrays
of 16 MiB and more through ``Queue`` and ``Pipe`` at least 40% of memcpy's
MB/s.  Array rows need numpy; without it they are skipped.
"""

BIG_MEMORY = Table(
    key="big_memory",
    title="Peak memory of sender plus receiver while one 1 GiB float64 array goes through a Queue",
    note=(
        "the sum of both processes' Pss (/proc/<pid>/smaps_rollup: pages both map count "
        "once), sampled every few ms by a third process"
    ),
    unit=Unit.BYTES,
    label_header="object",
    rows=tuple(
        Row(
            backend,
            "big_memory_queue",
            iterations=1,
            quick_iterations=1,
            target=1.0,
            label="Queue, float64 array 1 GiB",
            limit=2.2 * GIB,
            requires=(NUMPY, PSS, AVAILABLE_MEMORY),
        )
        for backend in STDLIB_METHODS
    ),
    quick=False,
    backend_limit=1,
    max_repeats=3,
)
"""Issue 14's memory bound: at most 2.2 GiB for procframe, never more than the standard
library.  Skipped with a message where the machine has less than 8 GiB available; a
``--quick`` run measures it only if ``--table`` names it.
"""


SERIALIZERS = ("pickle", "cloudpickle", "dill")
"""procframe's built-in serializers, in the order of the serializers table's rows."""

SERIALIZER_PACKAGES = {"pickle": (), "cloudpickle": (CLOUDPICKLE,), "dill": (DILL,)}
"""What each serializer's rows require: its package (pickle comes with Python)."""

PLAIN_CASES = ("queue", "simple_queue", "pipe", "pool_apply", "pool_imap", "pool_map")
"""The rows of :data:`OBJECTS` and :data:`POOL_OPERATIONS` the serializers table repeats
under each serializer, with their iterations and targets."""

QUICK_PLAIN_CASES = ("queue", "pool_map")
"""Those of :data:`PLAIN_CASES` a ``--quick`` run measures (pickle and cloudpickle only)."""

QUICK_SERIALIZERS = ("pickle", "cloudpickle")

LEAST_SHARE_OF_PICKLE = 0.95
"""Issue 15: with a richer serializer chosen, plain data is passed at least 95% as fast as
with pickle (procframe over its own pickle row, measured in the same run)."""

LAMBDA_CASES = (
    # label, harness case, operations per run (full, quick), peers besides multiprocess
    ("Queue of (str, lambda)", "queue_lambda", 20_000, 5_000, ()),
    ("Pool map of a lambda", "pool_map_lambda", 200_000, 50_000, (LOKY,)),
)
"""The rows of :data:`SERIALIZER_TABLE` that only a serializer that carries functions by value
can run: ``(256-byte string, lambda)`` tuples from a child through a ``Queue``, and maps of
10,000 items (a sample each, default chunksize) with a lambda on a ``Pool(2)``."""

UNTARGETED_LAMBDA_ROWS = {("queue_lambda", "dill")}
"""The lambda rows without a target, (case, serializer): procframe with dill passes
``(str, lambda)`` items about half as fast as ``multiprocess``.  Both pay dill for each
lambda, but procframe asks it to trace the globals the function uses (``recurse=True``:
what lets a function of the interactive prompt or of a child's ``__main__`` cross), which
doubles dill's cost, where ``multiprocess`` saves ``__main__``'s globals by reference."""

CANNOT_PASS_LAMBDAS = (
    "pickle saves functions by name: neither multiprocessing nor procframe with pickle "
    "can pass a lambda"
)


def serializer_label(serializer: str, operation: str, versus: str) -> str:
    """``cloudpickle: Queue vs multiprocessing``."""
    return f"{serializer}: {operation} vs {PEERS[versus]}"


def plain_data_rows(backend: str) -> tuple[Row, ...]:
    """The rows of :data:`PLAIN_CASES` on ``backend``, each serializer's after the other, those
    of a richer serializer bounded by :data:`LEAST_SHARE_OF_PICKLE` of pickle's."""
    operations = [
        *((label, case, full, quick, target) for label, case, full, quick, target in OBJECTS),
        *(
            (f"Pool {label}", case, full, quick, target)
            for label, case, full, quick, target in POOL_OPERATIONS
        ),
    ]
    rows = []
    for label, case, full, quick, target in operations:
        if case not in PLAIN_CASES:
            continue
        reference = serializer_label("pickle", label, STDLIB)
        for serializer in SERIALIZERS:
            rich = serializer != "pickle"
            rows.append(
                Row(
                    backend,
                    f"{case}[{serializer}]",
                    full,
                    quick,
                    target,
                    label=serializer_label(serializer, label, STDLIB),
                    share_of=reference if rich else "",
                    min_share=LEAST_SHARE_OF_PICKLE if rich else None,
                    quick=case in QUICK_PLAIN_CASES and serializer in QUICK_SERIALIZERS,
                    requires=SERIALIZER_PACKAGES[serializer],
                )
            )
    return tuple(rows)


def lambda_rows(backend: str) -> tuple[Row, ...]:
    """The rows of :data:`LAMBDA_CASES` on ``backend``: the standard library's, which cannot
    run, then each richer serializer's against each peer (``multiprocess``, loky)."""
    rows = []
    for label, case, full, quick, peers in LAMBDA_CASES:
        rows.append(
            Row(
                backend,
                case,
                full,
                quick,
                None,
                label=serializer_label("pickle", label, STDLIB),
                quick=False,
                cannot=CANNOT_PASS_LAMBDAS,
            )
        )
        for serializer in SERIALIZERS[1:]:
            for peer in (*(peers if serializer == "cloudpickle" else ()), MULTIPROCESS):
                rows.append(
                    Row(
                        backend,
                        f"{case}[{serializer}]",
                        full,
                        quick,
                        None if (case, serializer) in UNTARGETED_LAMBDA_ROWS else 1.0,
                        label=serializer_label(serializer, label, peer),
                        quick=False,
                        requires=(*SERIALIZER_PACKAGES[serializer], peer),
                        versus=peer,
                    )
                )
    return tuple(rows)


SERIALIZER_TABLE = Table(
    key="serializers",
    title="Operations per second under each serializer",
    note=(
        "Queue, SimpleQueue, Pipe: 256-byte strings from a child; Pool(2), trivial function; "
        "ratio = procframe / the library after vs; of pickle: procframe over its pickle row"
    ),
    unit=Unit.PER_SECOND,
    label_header="serializer: operation vs library",
    rows=tuple(
        row
        for backend in STDLIB_METHODS
        for row in (*plain_data_rows(backend), *lambda_rows(backend))
    ),
    backend_limit=1,
    default_backend="forkserver",
    interleaves_shares=True,
    max_repeats=3,
    share_header="of pickle",
    versus_header="versus",
)
"""Issue 15's table: procframe under each serializer, against the standard library with plain
data and against the peers built for lambdas where the standard library cannot run.

Each case runs with the row's serializer chosen (``set_serializer`` at the
start of the harness's procframe run; the case's name says which, ``queue[dill]``);
the other side runs its own code (the standard library, ``multiprocess``
with dill, loky with cloudpickle).  Plain data goes through pickle whichever
serializer is chosen, so a richer serializer's row of plain data must reach
95% of the pickle row's figure (``of pickle``) besides the ratio target of
its own table.  The lambda rows have a target of 1.0 against each peer.  The
path does not depend on the start method once the workers run, so the table
measures one backend, ``forkserver`` (procframe's default, where a lambda
must travel to a child that did not inherit it) unless ``--backend`` names
others; ``--quick`` measures only the ``Queue`` and ``Pool map`` rows of
pickle and cloudpickle.  A row whose serializer or peer is not installed is
skipped, naming the package.
"""

DASK_OPERATIONS = (
    # label, harness case, operations per run (full, quick), unit, target, in --quick
    (
        "Pool.map, chunksize 1 vs client.map + gather",
        "dask_pool_map",
        10_000,
        2_000,
        None,
        0.9,
        True,
    ),
    (
        "Pool.map, default chunksize vs client.map + gather",
        "dask_pool_map_chunked",
        10_000,
        2_000,
        None,
        0.9,
        False,
    ),
    (
        "apply latency vs client.submit().result(), s",
        "dask_apply",
        300,
        100,
        Unit.SECONDS,
        1.1,
        True,
    ),
    ("Queue vs distributed.Queue", "dask_queue", 2_000, 500, None, 0.9, True),
)
"""The rows of :data:`DASK_TABLE`.

``Pool.map`` of 10,000 trivial tasks (``square``) on ``get_context("dask").Pool(2)``
against ``client.gather(client.map(square, items, pure=False))``: with chunksize 1 each
item is a Dask task on both sides, so the ratio is what procframe's layer costs; with
the default chunksize procframe sends eight chunks, which is what a program that calls
``map`` gets.  ``apply`` is one ``pool.apply(square, (x,))`` round trip against
``client.submit(square, x, pure=False).result()``, a latency.  ``Queue`` passes 256-byte
strings as :data:`OBJECTS_PASSED` does, from a producer on a worker (procframe: a
``Process``; Dask: a task) to the harness, against a ``distributed.Queue``.
"""

DASK_TABLE = Table(
    key="dask",
    title="procframe's dask backend against Dask's own API, on one LocalCluster",
    note=(
        "2 worker processes of 1 thread, started once for the table; trivial function; "
        "256-byte strings; ratio = procframe / Dask"
    ),
    unit=Unit.PER_SECOND,
    label_header="operation vs Dask's API",
    loosest_target=0.9,
    rows=tuple(
        Row(
            DASK,
            case,
            full,
            quick,
            target,
            label=label,
            unit=unit,
            quick=in_quick,
            requires=(DISTRIBUTED, PROCFRAME_DASK),
            versus=DASK,
        )
        for label, case, full, quick, unit, target, in_quick in DASK_OPERATIONS
    ),
    max_repeats=3,
    versus_header=PEERS[DASK],
    cluster=DASK,
)
"""Issue 16's table: procframe's layer over Dask costs at most 10% (ratio >= 0.9 on rates,
<= 1.1 on the latency).  Both sides run on the same ``LocalCluster(n_workers=2,
threads_per_worker=1, processes=True)``, started before the table's first run (its start
is not measured) and closed after its last; each harness run reaches it through
``PROCFRAME_DASK_ADDRESS``.  The table is measured only when ``--backend dask`` or
``--table dask`` asks (it needs ``distributed`` and the ``procframe_dask`` plugin: without
them its rows are skipped, naming the package).
"""

TABLES: dict[str, Table] = {
    table.key: table
    for table in (
        START_JOIN,
        OBJECTS_PASSED,
        LOCK_PAIRS,
        CONDITION_WAITS,
        SEQUENCE_READS,
        POOL,
        MANAGED_BY_SERVER,
        BIG,
        BIG_MEMORY,
        SERIALIZER_TABLE,
        DASK_TABLE,
    )
}
"""Every table, in the order they are printed."""
