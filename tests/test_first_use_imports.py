"""First use of a Pool imports nothing it does not use: whole programs are timed against the
standard library (issue 12), and every module a parent loads also makes each fork dearer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from procframe._core.registry import available_backends

PROGRAM = """\
import json, sys
import procframe


if __name__ == "__main__":
    ctx = procframe.get_context(sys.argv[1])
    with ctx.Pool(2) as pool:
        assert pool.map(abs, range(-4, 4)) == [4, 3, 2, 1, 0, 1, 2, 3]
    pooled = sorted(set(sys.argv[2:]) & set(sys.modules))
    with ctx.Manager() as manager:
        assert manager.list([7])[0] == 7
    print(json.dumps([pooled, sorted(set(sys.argv[2:]) & set(sys.modules))]))
"""

NOT_AT_FIRST_USE = ("pluggy", "typing", "inspect", "dataclasses")
"""Modules neither a Pool nor a Manager uses (about 13 ms of imports): the built-in plugins
are called without pluggy (:mod:`procframe._core.builtin_hooks`), and procframe's modules
import ``typing`` only for type checkers."""

NOT_IN_A_POOL = ("hmac", "_hashlib", "hashlib")
"""Modules a Pool does not use: a handshake with an authkey loads them when it happens."""


@pytest.mark.parametrize(
    "backend", [name for name in ("fork", "spawn", "forkserver") if name in available_backends()]
)
def test_a_first_pool_and_manager_load_only_what_they_use(backend: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, backend, *NOT_AT_FIRST_USE, *NOT_IN_A_POOL],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    after_pool, after_manager = json.loads(done.stdout)
    assert after_pool == []
    assert not set(after_manager) & set(NOT_AT_FIRST_USE)
