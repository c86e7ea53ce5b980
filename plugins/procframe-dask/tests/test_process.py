"""The dask backend's Process, its children and its pipes: what the kit does not check.

Run with the session cluster (``-p procframe.testing -p procframe_dask.testing
--procframe-backend dask``): a scheduler and two workers, separate OS processes on
127.0.0.1, each in a working directory of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import exchange
from procframe.testing.helpers.targets import read_report, report

pytestmark = pytest.mark.timeout(180)
# The workers cannot import this module: its targets travel by value.
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PATIENCE = 60.0


def _run(ctx: procframe.Context, target: Any, *args: Any) -> int | None:
    p = ctx.Process(target=target, args=args)
    p.start()
    try:
        p.join(PATIENCE)
    finally:
        exchange.reap(p)
    return p.exitcode


# -- child targets --------------------------------------------------------------------


def report_cwd(relative: str, absolute: str) -> None:
    report(relative, {"cwd": os.getcwd()})  # a relative path: lands in the child's cwd
    report(absolute, {"cwd": os.getcwd()})


# -- 1. the child's working directory ------------------------------------------------------


def test_a_child_starts_in_its_parents_working_directory(
    dask_ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert _run(dask_ctx, report_cwd, "relative.json", str(tmp_path / "abs.json")) == 0
    assert read_report(here / "relative.json", timeout=PATIENCE) == {"cwd": str(here)}


def test_a_child_whose_parents_directory_is_not_on_its_worker_starts_in_the_workers(
    dask_ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from procframe_dask import launcher

    missing = str(tmp_path / "not-on-the-worker")
    monkeypatch.setattr(launcher, "_working_directory", lambda: missing)
    assert _run(dask_ctx, report_cwd, "relative.json", str(tmp_path / "abs.json")) == 0
    seen = read_report(tmp_path / "abs.json", timeout=PATIENCE)["cwd"]
    assert seen != missing and os.path.isdir(seen)
    assert os.path.exists(os.path.join(seen, "relative.json"))
    os.remove(os.path.join(seen, "relative.json"))


# -- 3. a Connection crosses through a queue or a pipe, to a running child -------------------


def answer_through_a_received_connection(carrier: Any) -> None:
    conn = carrier.get(timeout=PATIENCE)
    message = conn.recv()
    conn.send(["pong", message])
    conn.close()  # the last copy of that end: the parent sees EOF


def test_a_connection_sent_to_a_running_child_works_after_its_sender_closed_it(
    dask_ctx: procframe.Context,
) -> None:
    carrier = dask_ctx.Queue()
    p = dask_ctx.Process(target=answer_through_a_received_connection, args=(carrier,))
    p.start()
    try:
        sent, ours = dask_ctx.Pipe()
        carrier.put(sent)
        sent.close()  # the child's copy lives on
        ours.send("ping")
        assert ours.poll(PATIENCE) and ours.recv() == ["pong", "ping"]
        assert ours.poll(PATIENCE)
        with pytest.raises(EOFError):
            ours.recv()
        ours.close()
        p.join(PATIENCE)
    finally:
        exchange.reap(p)
    assert p.exitcode == 0


def test_messages_read_ahead_travel_with_the_connection(dask_ctx: procframe.Context) -> None:
    from procframe.connection import wait

    a, b = dask_ctx.Pipe()
    b.send("first")
    assert wait([a], 10) == [a]  # read ahead into this process
    reader, writer = dask_ctx.Pipe(duplex=False)
    writer.send(a)
    a.close()
    assert reader.poll(10)
    arrived = reader.recv()
    assert arrived.poll(10) and arrived.recv() == "first"
    for end in (arrived, b, reader, writer):
        end.close()


# -- 4. wait() sees at once what the peer sent -----------------------------------------------


def test_wait_with_no_timeout_sees_a_message_sent_while_the_read_ahead_waited(
    dask_ctx: procframe.Context,
) -> None:
    from procframe.connection import wait

    a, b = dask_ctx.Pipe()
    with a, b:
        assert wait([a], 0.3) == []  # the read-ahead is waiting on the cluster now
        for i in range(5):
            b.send(i)
            assert wait([a], 0) == [a]
            assert a.recv() == i
        assert wait([a], 0) == []


# -- 5. what crosses is pickled as procframe pickles a message -------------------------------


class Refused:
    def __reduce__(self) -> Any:
        raise TypeError("refused by design")

    def __repr__(self) -> str:
        return "<Refused>"


def test_a_memoryview_and_a_lambda_cross_queues_and_pipes(dask_ctx: procframe.Context) -> None:
    q = dask_ctx.Queue()
    a, b = dask_ctx.Pipe()
    try:
        for put, get in ((q.put, lambda: q.get(timeout=PATIENCE)), (a.send, b.recv)):
            put(memoryview(b"abc"))
            got = get()
            assert isinstance(got, memoryview) and bytes(got) == b"abc"
            put(lambda x: x + 1)
            assert get()(1) == 2
    finally:
        q.close()
        a.close()
        b.close()


def test_what_a_queue_or_pipe_refuses_fails_in_the_caller_with_procframes_note(
    dask_ctx: procframe.Context,
) -> None:
    q = dask_ctx.Queue()
    a, b = dask_ctx.Pipe()
    try:
        for put in (q.put, a.send):
            with pytest.raises(TypeError, match="refused by design") as info:
                put(Refused())
            assert any("cannot carry <Refused>" in n for n in info.value.__notes__)
        q.put("still usable")
        assert q.get(timeout=PATIENCE) == "still usable"
    finally:
        q.close()
        a.close()
        b.close()


def test_a_process_whose_argument_is_refused_names_it_and_keeps_the_note(
    dask_ctx: procframe.Context,
) -> None:
    p = dask_ctx.Process(target=len, args=(Refused(),))
    with pytest.raises(procframe.ProcessPicklingError, match=r"args\[0\] \(<Refused>\)") as info:
        p.start()
    assert any("serializer cannot carry <Refused>" in n for n in info.value.__notes__)


def _local_function() -> str:
    return "carried by value"


def test_a_connection_pickled_twice_for_one_message_is_counted_once(
    dask_ctx: procframe.Context,
) -> None:
    # This module is registered by value: the message is pickled again by cloudpickle.
    sent, other = dask_ctx.Pipe()
    q = dask_ctx.Queue()
    try:
        q.put((sent, _local_function))
        sent.close()
        received, function = q.get(timeout=PATIENCE)
        assert function() == "carried by value"
        received.send("hello")
        assert other.poll(PATIENCE) and other.recv() == "hello"
        received.close()  # the last copy: the peer sees the end
        assert other.poll(PATIENCE)
        with pytest.raises(EOFError):
            other.recv()
    finally:
        other.close()
        q.close()
