"""Pool scheduling: no task waits in a busy worker's queue while another worker is idle.

Tasks sent ahead to a worker that then runs a long task are taken back for
an idle worker; a task runs exactly once even when its worker dies, and
``map``/``imap`` results keep their order.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

import procframe
import procframe.pool
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import pool_scheduling as sched

PATIENCE = tk.PATIENCE
BOUND = 10.0
"""Seconds short tasks may take behind a long one: far below the long task (which only ends
when the test lets it), loose enough for a loaded machine."""


def test_short_tasks_do_not_wait_behind_a_long_one(ctx: procframe.Context, tmp_path: Path) -> None:
    flag = str(tmp_path / "flag")
    with ctx.Pool(4) as pool:
        pool.map_async(tk.square, range(8)).get(timeout=PATIENCE)  # short tasks: sent far ahead
        long = pool.apply_async(tk.wait_for_path, (flag, "long"))
        time.sleep(0.2)
        started = time.monotonic()
        assert pool.map_async(tk.square, range(6)).get(timeout=BOUND) == [x * x for x in range(6)]
        singles = [pool.apply_async(tk.square, (x,)) for x in range(6)]
        assert [r.get(timeout=BOUND) for r in singles] == [x * x for x in range(6)]
        assert time.monotonic() - started < BOUND
        assert not long.ready()
        Path(flag).touch()
        assert long.get(timeout=PATIENCE) == "long"


def test_imap_unordered_yields_every_other_result_while_one_task_blocks(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    flag = str(tmp_path / "flag")
    with ctx.Pool(2) as pool:
        pool.map_async(tk.square, range(8)).get(timeout=PATIENCE)  # short tasks: sent far ahead
        task = partial(sched.square_or_block, blocked=0, path=flag)
        results = pool.imap_unordered(task, range(200), chunksize=1)
        others = {results.next(timeout=BOUND) for _ in range(199)}
        assert others == {x * x for x in range(1, 200)}
        Path(flag).touch()
        assert results.next(timeout=PATIENCE) == 0


@pytest.mark.requires("separate_memory", "tasks_run_once")
@pytest.mark.parametrize("round_", range(3))
def test_a_long_task_a_dead_worker_and_taken_back_tasks_lose_repeat_or_reorder_nothing(
    ctx: procframe.Context, tmp_path: Path, round_: int
) -> None:
    flag = str(tmp_path / "flag")
    log = str(tmp_path / "runs")
    items = range(300)
    with ctx.Pool(3) as pool:
        pool.map_async(tk.square, range(9)).get(timeout=PATIENCE)  # short tasks: sent far ahead
        long = pool.apply_async(tk.wait_for_path, (flag, "long"))
        doomed = pool.apply_async(sched.die_after, (0.05 * round_,))
        mapped = pool.map_async(partial(sched.record, log=log), items, chunksize=1)
        ordered = pool.imap(partial(sched.record, log=log), items, chunksize=1)
        assert mapped.get(timeout=BOUND + PATIENCE) == [x * x for x in items]
        assert [ordered.next(timeout=PATIENCE) for _ in items] == [x * x for x in items]
        with pytest.raises(procframe.pool.WorkerLostError):
            doomed.get(timeout=PATIENCE)
        assert not long.ready()  # all of it ran beside the long task
        Path(flag).touch()
        assert long.get(timeout=PATIENCE) == "long"
    runs = Counter(sched.recorded_runs(log))
    assert runs == Counter({x: 2 for x in items})  # each call exactly once
