"""How soon a pool replaces workers lost from outside, and when it concludes none can start."""

from __future__ import annotations

import itertools
import pickle
import signal

from procframe.pool import WorkerStartError
from procframe.pool._restarts import FIRST_DELAY, FORGET_AFTER, MAX_DELAY, Restarts


def test_outside_kills_are_replaced_at_once_then_ever_later_up_to_a_bound() -> None:
    restarts = Restarts(1)
    delays = [restarts.lost(-signal.SIGKILL, True, now=10.0 + i * 0.001) for i in range(14)]
    assert delays[:4] == [0.0] * 4
    assert delays[4:7] == [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY]
    assert delays[-1] == MAX_DELAY
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert not restarts.given_up(any_worker_ready=False)  # killed from outside: never broken


def test_a_task_that_ends_or_a_quiet_while_starts_the_delays_over() -> None:
    restarts = Restarts(1)
    for i in range(10):
        restarts.lost(-signal.SIGKILL, True, now=1.0 + i * 0.001)
    restarts.progress()
    assert restarts.lost(-signal.SIGKILL, True, now=2.0) == 0.0
    for i in range(10):
        restarts.lost(-signal.SIGKILL, True, now=3.0 + i * 0.001)
    assert restarts.lost(-signal.SIGKILL, True, now=3.1 + FORGET_AFTER) == 0.0


def test_workers_ending_by_themselves_before_ready_mean_none_can_start() -> None:
    for exitcode in (1, 0, -signal.SIGSEGV, -signal.SIGABRT):
        restarts = Restarts(4)
        for i in range(3):
            assert not restarts.given_up(any_worker_ready=False), (exitcode, i)
            restarts.lost(exitcode, False, now=1.0 + i)
        assert restarts.given_up(any_worker_ready=False), exitcode
        assert restarts.failed_starts == 3
        assert not restarts.given_up(any_worker_ready=True), "a ready worker can run tasks"


def test_killed_before_ready_or_a_worker_seen_ready_is_no_evidence() -> None:
    restarts = Restarts(1)
    for i in range(10):
        restarts.lost(-signal.SIGKILL, False, now=1.0 + i)  # killed while it started
        restarts.lost(-signal.SIGTERM, False, now=1.5 + i)
    assert restarts.failed_starts == 0
    restarts.lost(1, False, now=20.0)
    restarts.lost(1, False, now=21.0)
    restarts.worker_ready()
    restarts.lost(1, False, now=22.0)
    assert restarts.failed_starts == 1
    restarts.lost(-signal.SIGKILL, True, now=23.0)  # one had started fine
    assert restarts.failed_starts == 0


def test_the_start_error_names_the_exit_and_crosses_processes() -> None:
    error = pickle.loads(pickle.dumps(WorkerStartError(12, 1, 3)))
    assert (error.pid, error.exitcode, error.attempts) == (12, 1, 3)
    assert isinstance(error, RuntimeError)
    assert "exited with code 1" in str(error)
    assert "procframe: child process 12 could not start" in str(error)
    assert "killed by SIGSEGV" in str(WorkerStartError(12, -signal.SIGSEGV, 3))
