"""Argument checks shared by the factories (so that every backend gets checked arguments) and
by the objects that take the same arguments directly."""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    from typing import Any


def integer(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else a clear error."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def optional_integer(name: str, value: Any, minimum: int) -> int | None:
    """``None``, or an int of at least ``minimum``."""
    return None if value is None else integer(name, value, minimum)


def timeout(name: str, value: Any, *, positive: bool = False) -> float | None:
    """``None`` or a number of seconds (``>= 0``, or ``> 0`` if ``positive``); NaN is refused."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


def wait_timeout(value: Any, name: str = "timeout") -> float | None:
    """The ``timeout`` of a blocking call: ``None`` (for ever) or seconds, a negative one
    counting as 0 (as ``multiprocessing`` takes it); NaN and what is not a number are refused
    with an error that names ``name``."""
    if value is None:
        return None
    seconds = value if type(value) is float else _seconds(value, name)
    if seconds != seconds:  # NaN: every comparison with it is false, so a wait would never end
        raise ValueError(f"{name} must be a number of seconds or None, got {value!r}")
    return seconds if seconds > 0.0 else 0.0


def _seconds(value: Any, name: str) -> float:
    if not isinstance(value, (str, bytes, bytearray)):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")


def pool_size(processes: Any) -> int | None:
    """``None`` (one per CPU) or a number of workers, ``>= 1``."""
    if processes is None:
        return None
    integer("processes", processes)
    if processes < 1:
        raise ValueError(f"Number of processes must be at least 1, got {processes}")
    return int(processes)


def tasks_per_child(value: Any) -> int | None:
    """``None`` or a positive int; a ValueError otherwise, as ``multiprocessing`` raises."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"maxtasksperchild must be a positive int or None, got {value!r}")
    return value


def optional_callable(name: str, value: Any) -> Any:
    """``None`` or a callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


def message_slice(buf: Any, offset: int, size: int | None) -> memoryview:
    """``buf[offset:offset + size]`` as a view of bytes (what ``Connection.send_bytes`` sends).

    ``buf`` is any bytes-like object; ``size`` ``None`` means to its end.
    """
    view = memoryview(buf)
    if view.itemsize != 1 or view.ndim != 1:
        view = view.cast("B")
    length = len(view)
    if offset < 0:
        raise ValueError("offset is negative")
    if length < offset:
        raise ValueError("buffer length < offset")
    if size is None:
        size = length - offset
    elif size < 0:
        raise ValueError("size is negative")
    elif offset + size > length:
        raise ValueError("buffer length < offset + size")
    return view[offset : offset + size]
