"""Ctrl-C reaches a main thread blocked on a pool's result, wherever the signal lands."""

from __future__ import annotations

import signal
import threading
import time

import pytest

import procframe


def _sigint_this_thread() -> None:
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def test_a_sigint_caught_by_another_thread_stops_a_blocking_map() -> None:
    # The kernel may deliver a process's SIGINT to any thread; Python then only
    # flags it, and a main thread blocked on a lock would not notice until the
    # result came (here in 60 s).
    assert threading.current_thread() is threading.main_thread()
    with procframe.Pool(1) as pool:
        pool.apply(time.sleep, (0,))  # the worker is up
        interrupter = threading.Timer(0.3, _sigint_this_thread)
        began = time.monotonic()
        interrupter.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                pool.map(time.sleep, [60])
        finally:
            interrupter.join()
        assert time.monotonic() - began < 20
        with pytest.raises(ValueError, match="not running"):
            pool.apply(time.sleep, (0,))  # Ctrl-C in map stopped the pool


def test_a_result_waited_for_with_a_timeout_still_times_out_in_slices() -> None:
    with procframe.Pool(1) as pool:
        result = pool.apply_async(time.sleep, (60,))
        began = time.monotonic()
        with pytest.raises(procframe.TimeoutError):
            result.get(timeout=0.6)
        assert 0.6 <= time.monotonic() - began < 20
        result.wait(0.3)
        assert not result.ready()
        pool.terminate()
