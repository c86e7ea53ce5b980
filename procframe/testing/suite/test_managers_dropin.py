"""Managers that behave as the standard library's where programs rely on it.

* Classes and callables of a script's main module (a custom proxy type, a
  registered generator) work under every backend, also where the manager's
  server (or a child) re-imported the script as ``__mp_main__``.
* ``serializer="xmlrpclib"``: XML-RPC messages, authenticated as pickled ones;
  what XML-RPC carries round-trips, what it cannot gets a clear error.
* Iterating a list proxy reads the server's list at each ``next`` (an
  iterator sees changes made after it was created, by any process); a dict
  proxy's iterator raises ``RuntimeError`` when the dict changes size.
* ``procframe.managers.Array``, ``SyncManager.Array`` and ``Value``.

The threads backend's Manager hands out plain objects: the iteration and
Array/Value tests run there too (its list and dict iterate as Python's do).
Children's targets are in :mod:`procframe.testing.helpers.managers_dropin`.
"""

from __future__ import annotations

import array
import datetime
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe import managers
from procframe.testing.helpers import managers as tkm
from procframe.testing.helpers import managers_dropin as helpers
from procframe.testing.helpers import pool as tk_pool
from procframe.testing.plugin import selected_backends

pytestmark = pytest.mark.timeout(180)

PATIENCE = tkm.PATIENCE


@pytest.fixture(scope="module")
def _managers(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A started ``Manager()`` per backend under test (the threads one included)."""
    with tkm.managers_per_backend(selected_backends(request.config), _start) as started:
        yield started


def _start(ctx: procframe.Context) -> Any:
    return ctx.Manager()


@pytest.fixture
def manager(procframe_backend: str, _managers: dict[str, Any]) -> Any:
    """The backend's shared ``Manager()``."""
    return _managers[procframe_backend]


def _script_output(tmp_path: Path, source: str, backend: str) -> str:
    """Run ``source`` as a script under ``backend``; its standard output (it must succeed)."""
    with tkm.marked_script(tmp_path, source, backend) as (script, _mark):
        try:
            out, err = script.communicate(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script did not end within {PATIENCE}s")
        assert script.returncode == 0, err
        assert "Traceback" not in err, err
        return out


# -- the main script's classes ----------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_custom_proxy_type_and_callables_of_the_main_script(
    procframe_backend: str, tmp_path: Path
) -> None:
    out = _script_output(tmp_path, helpers.CLASSES_OF_THE_MAIN_SCRIPT, procframe_backend)
    assert out.splitlines() == [
        "you called A.foo()|you called A.bar()",
        "you called A._baz()",
        "GeneratorProxy [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
        "True True",
        "True",
    ]


def test_a_child_sends_back_an_object_of_a_main_script_class(
    procframe_backend: str, tmp_path: Path
) -> None:
    out = _script_output(tmp_path, helpers.A_CHILD_SENDS_A_MAIN_SCRIPT_OBJECT, procframe_backend)
    assert out == "True 3\n"


# -- the xmlrpclib serializer -----------------------------------------------------------


@pytest.fixture
def xml_manager(ctx: procframe.Context) -> Iterator[Any]:
    with managers.SyncManager(serializer="xmlrpclib", ctx=ctx) as manager:
        yield manager


CARRIED = {
    "none": None,
    "true": True,
    "false": False,
    "int": -(2**31),
    "big int": 2**31 - 1,
    "float": 1.5,
    "str": "text, ü & <tags>",
    "bytes": b"\x00\xffbytes",
    "list": [1, [2, "three"]],
    "dict": {"k": {"n": None}},
    "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5),
}
"""What XML-RPC carries, as it comes back."""


@pytest.mark.requires("manager_server")
def test_xmlrpclib_round_trips_what_xml_rpc_carries(xml_manager: Any) -> None:
    d = xml_manager.dict()
    for key, value in CARRIED.items():
        d[key] = value
    assert {key: d[key] for key in CARRIED} == CARRIED
    assert d.copy() == CARRIED
    d["tuple"] = (1, 2)
    assert d["tuple"] == [1, 2]  # XML-RPC has arrays only, as the standard library's
    assert sorted(d) == sorted([*CARRIED, "tuple"])
    assert str(d).startswith("{'none': None")

    items = xml_manager.list([1, 2, 3])
    items.append("four")
    assert (len(items), items[3], list(items)) == (4, "four", [1, 2, 3, "four"])
    ns = xml_manager.Namespace(x=1)
    ns.y = "two"
    assert (ns.x, ns.y) == (1, "two")
    value = xml_manager.Value("i", 7)
    value.value += 1
    assert value.get() == 8
    lock = xml_manager.Lock()
    assert lock.acquire(timeout=PATIENCE)
    lock.release()
    q = xml_manager.Queue()
    q.put({"a": [1]})
    assert q.get(timeout=PATIENCE) == {"a": [1]}

    with pytest.raises(KeyError) as raised:  # a builtin exception, rebuilt by name
        d["missing"]
    assert raised.value.args == ("missing",)
    assert isinstance(raised.value.__cause__, managers.RemoteError)
    with pytest.raises(IndexError):
        items[10]


@pytest.mark.requires("manager_server")
def test_xmlrpclib_refuses_what_xml_rpc_cannot_carry(xml_manager: Any) -> None:
    d = xml_manager.dict()
    for refused, error in (
        ({1, 2}, TypeError),
        ({1: "int key"}, TypeError),
        (object(), TypeError),
        (managers.Namespace(), TypeError),  # not sent as the struct of its __dict__
        (2**40, OverflowError),
    ):
        with pytest.raises(error, match="'xmlrpclib' serializer cannot send") as raised:
            d["x"] = refused
        assert "XML-RPC carries" in str(raised.value)
    with pytest.raises(TypeError, match="cannot marshal"):
        d["x"] = xml_manager.list()  # a proxy travels only in a pickle
    with pytest.raises(TypeError, match="cannot marshal <class 'slice'>"):
        xml_manager.list([1, 2])[0:1]
    with pytest.raises(managers.RemoteError, match="cannot be sent"):
        xml_manager.Array("i", [1, 2])._getvalue()  # the server's answer, an array.array
    d["x"] = "still served"
    assert d["x"] == "still served" and len(d) == 1


@pytest.mark.requires("manager_server")
def test_xmlrpclib_managers_authenticate(xml_manager: Any) -> None:
    intruder = managers.SyncManager(
        address=xml_manager.address, authkey=tkm.WRONG_KEY, serializer="xmlrpclib"
    )
    with pytest.raises(procframe.AuthenticationError):
        intruder.connect()
    d = xml_manager.dict(a=1)
    assert d["a"] == 1


@pytest.mark.requires("manager_server")
def test_xmlrpclib_proxies_in_children_and_proxies_returned_by_methods(
    ctx: procframe.Context,
) -> None:
    with managers.SyncManager(serializer="xmlrpclib", ctx=ctx) as manager:
        d = manager.dict()
        child = ctx.Process(target=helpers.put_to_dict, args=(d, "child", [1, 2]))
        child.start()
        child.join(PATIENCE)
        assert child.exitcode == 0
        assert d["child"] == [1, 2]
    calc = tkm.CalcManager(serializer="xmlrpclib", ctx=ctx)
    with calc:
        calculator = calc.Calculator()
        calculator.add(2)
        calculator.add(3, times=2)
        history = calculator.history()  # method_to_typeid: an Iterator proxy
        assert isinstance(history, tkm.IteratorProxy)
        assert list(history) == [2, 6]
        with pytest.raises(ValueError, match="boom"):
            calculator.fail("boom")


# -- iterating containers ------------------------------------------------------------------


def test_a_list_iterator_sees_changes_made_after_it_was_created(manager: Any) -> None:
    items = manager.list([1, 2, 3])
    it = iter(items)
    items[0] = 100
    assert next(it) == 100
    items.append(4)
    assert list(it) == [2, 3, 4]
    items.append(5)
    with pytest.raises(StopIteration):  # an exhausted iterator stays exhausted
        next(it)

    it = iter(items)
    assert next(it) == 100
    del items[1:]
    assert list(it) == []

    items.extend(range(3))
    seen = []
    for x in items:  # the loop reads what the body appends
        seen.append(x)
        if len(seen) < 6:
            items.append(len(seen))
    assert seen == [100, 0, 1, 2, 1, 2, 3, 4, 5]


def test_a_list_iterator_sees_another_process_s_change_between_two_nexts(
    ctx: procframe.Context, manager: Any
) -> None:
    items = manager.list(["a", "b", "c"])
    go, done = ctx.Event(), ctx.Event()
    child = ctx.Process(
        target=helpers.change_after, args=(go, done, helpers.set_item, items, 1, "changed")
    )
    child.start()
    try:
        it = iter(items)
        assert next(it) == "a"
        go.set()
        assert done.wait(PATIENCE)  # synchronised by an Event the manager never sees
        assert next(it) == "changed"
        assert next(it) == "c"
    finally:
        child.join(PATIENCE)
    assert child.exitcode == 0


def test_a_dict_iterator_raises_when_the_dict_changes_size(manager: Any) -> None:
    d = manager.dict(a=1, b=2, c=3)
    it = iter(d)
    assert next(it) == "a"
    d["b"] = 20  # a value changes: the iteration goes on
    assert next(it) == "b"
    d["new"] = 4
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        next(it)
    assert sorted(d) == ["a", "b", "c", "new"]
    assert dict(d.items()) == {"a": 1, "b": 20, "c": 3, "new": 4}
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for key in d:
            del d[key]


def test_a_dict_iterator_sees_another_process_s_change_between_two_nexts(
    ctx: procframe.Context, manager: Any
) -> None:
    d = manager.dict(a=1, b=2, c=3)
    go, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=helpers.change_after, args=(go, done, helpers.set_item, d, "new", 4))
    child.start()
    try:
        it = iter(d)
        assert next(it) == "a"
        go.set()
        assert done.wait(PATIENCE)
        with pytest.raises(RuntimeError, match="changed size during iteration"):
            next(it)
    finally:
        child.join(PATIENCE)
    assert child.exitcode == 0


@pytest.mark.requires("manager_server")
def test_iterating_frees_the_server_s_iterators(ctx: procframe.Context) -> None:
    # A manager of its own: the shared one's count moves as other tests' proxies go.
    with ctx.Manager() as manager:
        d = manager.dict(dict.fromkeys(range(50), 0))
        items = manager.list(range(50))
        baseline = manager._number_of_objects()
        for _ in range(3):
            assert sum(1 for _ in d) == 50
            assert sum(items) == sum(range(50))
        assert tk_pool.eventually(lambda: manager._number_of_objects() == baseline), (
            f"{manager._number_of_objects()} objects, {baseline} before"
        )


@pytest.mark.requires("manager_server")
def test_a_dict_proxy_of_a_manager_without_an_iterator_type_iterates(
    ctx: procframe.Context,
) -> None:
    with helpers.DictOnlyManager(ctx=ctx) as manager:
        d = manager.dict()
        d.update(a=1, b=2)
        assert list(d) == ["a", "b"]
        it = iter(d)
        assert iter(it) is it and next(it) == "a"


# -- Array and Value ------------------------------------------------------------------------


@pytest.mark.in_one_process
def test_the_managers_module_has_array_and_value() -> None:
    made = managers.Array("i", [1, 2, 3])
    assert type(made) is array.array and made == array.array("i", [1, 2, 3])
    assert managers.Array("d", [1.5], lock=False) == array.array("d", [1.5])
    with pytest.raises(ValueError):
        managers.Array("z", [1])
    value = managers.Value("i", 7, lock=False)
    value.value += 1
    assert (value.get(), repr(value)) == (8, "Value('i', 8)")


def test_manager_array_and_value(manager: Any) -> None:
    value = manager.Value("i", 7)
    assert (value.value, value.get(), str(value)) == (7, 7, "Value('i', 7)")
    value.value = 8
    value.set(value.get() + 1)
    assert value.value == 9
    assert manager.Value(typecode="d", value=1.5, lock=False).value == 1.5
    assert manager.Value("i", "no type check").value == "no type check"  # as the stdlib

    a = manager.Array("i", range(5))
    assert str(a) == "array('i', [0, 1, 2, 3, 4])"
    assert (len(a), a[2], a[-1]) == (5, 2, 4)
    a[2] = 20
    assert a[1:3] == array.array("i", [1, 20])
    assert list(a) == [0, 1, 20, 3, 4]
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(TypeError):
        a[0] = 1.5
    assert list(manager.Array(typecode="d", sequence=[1.0], lock=False)) == [1.0]
    with pytest.raises(Exception, match="bad typecode"):
        manager.Array("z", [1])
