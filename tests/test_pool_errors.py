"""The pool's pickling errors are also of the type pickle raised (what ``multiprocessing`` raises).

:func:`procframe.pool._errors.pickling_error` mixes ``ProcessPicklingError``
with the original exception's type; these tests cover the types that cannot
be mixed or built from one message, and pickling the result.
"""

from __future__ import annotations

import pickle

import pytest

import procframe
from procframe._core.reduction import InheritanceOnlyError, export_fd
from procframe.pool._errors import pickling_error


class NeedsTwo(Exception):
    """An exception whose ``__init__`` takes two arguments."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first, second)


@pytest.mark.parametrize(
    "original",
    [
        RuntimeError("from __reduce__"),
        AttributeError("Can't pickle local object 'f.<locals>.g'"),
        OSError(9, "Bad file descriptor"),
        KeyError("k"),
        NeedsTwo("a", "b"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        pickle.PicklingError("lambda"),
        TypeError("cannot pickle '_thread.lock' object"),
        InheritanceOnlyError("a Lock"),
    ],
)
def test_a_pickling_error_is_also_of_the_original_type(original: Exception) -> None:
    error = pickling_error("cannot send the task f(...): its args[0] cannot be pickled", original)
    assert isinstance(error, procframe.ProcessPicklingError)
    assert isinstance(error, type(original))
    assert isinstance(error, (pickle.PicklingError, TypeError))
    assert error.__cause__ is original
    assert "args[0]" in str(error)
    assert type(error).__name__ == "ProcessPicklingError"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)


class Sealed(Exception):
    """An exception that refuses subclasses."""

    def __init_subclass__(cls) -> None:
        raise TypeError("Sealed cannot be subclassed")


def test_a_type_that_cannot_be_mixed_in_gives_the_plain_error() -> None:
    original = Sealed("sealed")
    error = pickling_error("cannot send it", original)
    assert type(error) is procframe.ProcessPicklingError
    assert error.__cause__ is original


def test_the_same_original_type_gives_the_same_class() -> None:
    first = pickling_error("one", RuntimeError("x"))
    second = pickling_error("two", RuntimeError("y"))
    assert type(first) is type(second)


def test_pickling_a_descriptor_outside_a_launch_is_a_runtimeerror_and_a_typeerror() -> None:
    with pytest.raises(RuntimeError) as info:
        export_fd(0, "a Lock")
    assert isinstance(info.value, TypeError)
    assert "a Lock" in str(info.value)
