"""Bad values and timeouts get errors that name the argument, never a silent wrong answer."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

import procframe

pytestmark = pytest.mark.in_one_process

NAN = math.nan


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda ctx: ctx.Semaphore(1.5), "Semaphore value"),
        (lambda ctx: ctx.BoundedSemaphore(1.5), "BoundedSemaphore value"),
        (lambda ctx: ctx.Semaphore("1"), "Semaphore value"),
        (lambda ctx: ctx.Barrier(2.5), "parties"),
    ],
    ids=["Semaphore(1.5)", "BoundedSemaphore(1.5)", "Semaphore('1')", "Barrier(2.5)"],
)
def test_a_value_that_is_not_an_int_is_a_type_error_naming_it(
    ctx: procframe.Context, make: Callable[[procframe.Context], Any], name: str
) -> None:
    with pytest.raises(TypeError, match=name):
        make(ctx)


def test_public_classes_check_their_values_too(ctx: procframe.Context) -> None:
    from procframe import synchronize

    with pytest.raises(TypeError, match="Semaphore value"):
        synchronize.Semaphore(1.5, ctx=ctx)
    with pytest.raises(TypeError, match="BoundedSemaphore value"):
        synchronize.BoundedSemaphore(0.5, ctx=ctx)


def test_a_nan_barrier_timeout_is_a_value_error_naming_it(ctx: procframe.Context) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ctx.Barrier(2, timeout=NAN)


def _waits(ctx: procframe.Context) -> dict[str, Callable[[Any], object]]:
    """Every blocking call of a primitive that takes a timeout, by name."""
    event = ctx.Event()
    condition = ctx.Condition()
    barrier = ctx.Barrier(2)
    queue: Any = ctx.Queue()
    queue.put(1)

    def in_condition(call: Callable[[], object]) -> object:
        with condition:
            return call()

    return {
        "Event.wait": lambda t: event.wait(t),
        "Condition.wait": lambda t: in_condition(lambda: condition.wait(t)),
        "Condition.wait_for": lambda t: in_condition(lambda: condition.wait_for(bool, t)),
        "Barrier.wait": lambda t: barrier.wait(t),
        "Queue.get": lambda t: queue.get(True, t),
        "Queue.put": lambda t: queue.put(2, True, t),
    }


WAITS = ["Event.wait", "Condition.wait", "Condition.wait_for", "Barrier.wait"]
WAITS += ["Queue.get", "Queue.put"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("call", WAITS)
def test_a_nan_timeout_is_a_value_error_naming_it(ctx: procframe.Context, call: str) -> None:
    wait = _waits(ctx)[call]
    with pytest.raises(ValueError, match="timeout"):
        wait(NAN)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("call", WAITS)
def test_a_timeout_that_is_not_a_number_is_a_type_error_naming_it(
    ctx: procframe.Context, call: str
) -> None:
    wait = _waits(ctx)[call]
    with pytest.raises(TypeError, match="timeout"):
        wait("1")


@pytest.mark.timeout(30)
def test_a_negative_wait_timeout_counts_as_zero(ctx: procframe.Context) -> None:
    event = ctx.Event()
    assert event.wait(-1) is False
    condition = ctx.Condition()
    with condition:
        assert condition.wait(-1) is False
    with pytest.raises(threading.BrokenBarrierError):
        ctx.Barrier(2).wait(-1)


def test_notify_of_a_number_that_is_not_an_int_is_a_type_error(ctx: procframe.Context) -> None:
    condition = ctx.Condition()
    with condition, pytest.raises(TypeError, match="n must be an int"):
        condition.notify(1.5)  # type: ignore[arg-type]
