"""The conformance kit's own machinery: in-one-process tests run once per implementation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from procframe import plugins
from procframe.backends import fork
from procframe.hookspecs import hookimpl
from procframe.posix.queues import Queue
from procframe.testing.plugin import implementation_groups, representatives


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


class SameFork(fork.ForkBackend):
    name = "same_fork"
    description = "fork again: the same factories as every built-in backend"


class OwnQueue(fork.ForkBackend):
    name = "own_queue"
    description = "fork, with a Queue of its own"

    @hookimpl
    def procframe_make_queue(self, ctx: Any, maxsize: int) -> Any:
        return Queue(maxsize, ctx=ctx)


class Watcher:
    """Not a backend: a wrapper of one factory takes part in every backend's calls."""

    @hookimpl(wrapper=True)
    def procframe_make_lock(self) -> Iterator[None]:
        return (yield)


def test_backends_that_reach_the_same_factories_are_one_group() -> None:
    plugins.register(SameFork())
    plugins.register(OwnQueue())
    names = ["fork", "forkserver", "own_queue", "same_fork", "spawn"]
    assert implementation_groups(names) == [
        ["fork", "forkserver", "same_fork", "spawn"],
        ["own_queue"],
    ]
    with plugins.registered(Watcher(), name="watcher"):
        assert implementation_groups(names) == [
            ["fork", "forkserver", "same_fork", "spawn"],
            ["own_queue"],
        ]


def test_each_group_is_represented_by_its_first_able_backend() -> None:
    plugins.register(OwnQueue())
    names = ["fork", "forkserver", "own_queue", "spawn"]
    assert representatives(names, set()) == ["fork", "own_queue"]
    assert representatives(names, {"pickles_process"}) == ["forkserver", "own_queue"]
    # nobody in a group is able: its first backend stays, to be reported as skipped
    assert representatives(["own_queue"], {"pickles_process"}) == ["own_queue"]
