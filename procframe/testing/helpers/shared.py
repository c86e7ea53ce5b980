"""Child-side helpers of the shared-memory suite: Value, Array, RawValue, RawArray.

Children import this module (never a test module, which imports pytest).
The ctypes types a child receives must be importable by name, so the
Structures the suite uses live here.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import procframe
from procframe.testing.helpers.targets import read_report, report


class Point(ctypes.Structure):
    """A Structure of two fields of different types."""

    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]


class Point3(Point):
    """A Structure that adds a field to its base's."""

    _fields_ = [("z", ctypes.c_double)]


def increment(value: Any, times: int) -> None:
    """Add 1 to a synchronized ``value``, ``times`` times, each under its lock."""
    for _ in range(times):
        with value.get_lock():
            value.value += 1


def increment_raw(value: Any, lock: Any, times: int) -> None:
    """Add 1 to a raw ``value``, ``times`` times, each under ``lock``."""
    for _ in range(times):
        with lock:
            value.value += 1


def see_and_change(objs: dict[str, Any], report_path: str) -> None:
    """Report what the child sees of each object of :func:`every_kind`, then change each one."""
    seen = {
        "raw_value": objs["raw_value"].value,
        "value": objs["value"].value,
        "raw_array": list(objs["raw_array"]),
        "array": objs["array"][:],
        "chars": objs["chars"].raw.decode("latin-1"),
        "raw_chars": objs["raw_chars"].value.decode("latin-1"),
        "point": [objs["point"].x, objs["point"].y],
        "raw_point": [objs["raw_point"].x, objs["raw_point"].y, objs["raw_point"].z],
        "points": [[p.x, p.y] for p in objs["points"]],
        "wide": objs["wide"].value,
    }
    objs["raw_value"].value = -1
    objs["value"].value = 2.25
    objs["raw_array"][:] = [9, 8, 7]
    objs["array"][1:3] = [-5, -6]
    objs["chars"].value = b"child"
    objs["raw_chars"].raw = b"XYZW"
    objs["point"].x = 42
    objs["raw_point"].z = -0.5
    objs["points"][1].y = 9.5
    objs["wide"].value = "wide"
    report(report_path, seen)


def every_kind(ctx: Any) -> dict[str, Any]:
    """One of each kind of shared object, with known contents (parent side)."""
    return {
        "raw_value": ctx.RawValue("i", 7),
        "value": ctx.Value("d", 1.5),
        "raw_array": ctx.RawArray("h", [1, 2, 3]),
        "array": ctx.Array("q", range(5)),
        "chars": ctx.Array("c", b"hello"),
        "raw_chars": ctx.RawArray("c", b"abcd"),
        "point": ctx.Value(Point, 1, 2.5),
        "raw_point": ctx.RawValue(Point3, 3, 4.5, 5.5),
        "points": ctx.RawArray(Point, [(1, 1.5), (2, 2.5)]),
        "wide": ctx.Array("u", "hi\u00e9\u4e2d"),
    }


def sum_values(values: list[Any], report_path: str) -> None:
    """Report the sum of ``v.value`` over ``values`` (many objects, few descriptors)."""
    report(report_path, sum(v.value for v in values))


def sum_array(arr: Any, report_path: str) -> None:
    """Report ``[len(arr), sum(arr)]`` for a raw array (plain ctypes reads)."""
    report(report_path, [len(arr), sum(arr)])


def pass_on(value: Any, report_path: str) -> None:
    """Start a grandchild (same backend) that adds 10 to ``value``; then add 1; report."""
    child = procframe.Process(target=add, args=(value, 10))
    child.start()
    child.join(60)
    value.value += 1
    report(report_path, {"exitcode": child.exitcode, "value": value.value})


def add(value: Any, amount: int) -> None:
    """``value.value += amount``, under its lock."""
    with value.get_lock():
        value.value += amount


def allocate_after_start(ready_path: str, go_path: str, report_path: str) -> None:
    """Make a RawArray of 1s, report readiness, wait for ``go``, then report its sum.

    The parent allocates and fills arrays in between: if a forked child's heap
    handed out the memory its parent hands out, the sum would change.
    """
    arr = procframe.RawArray("i", [1] * 64)
    value = procframe.Value("i", 1)
    report(ready_path, os.getpid())
    read_report(go_path, timeout=60)
    report(report_path, [sum(arr), value.value])


def hold_and_wait(value: Any, ready_path: str) -> None:
    """Write to ``value``, report readiness, then sleep until killed."""
    import time

    value.value = 99
    report(ready_path, os.getpid())
    while True:
        time.sleep(60)
