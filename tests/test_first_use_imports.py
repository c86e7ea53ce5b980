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
    with procframe.get_context(sys.argv[1]).Pool(2) as pool:
        assert pool.map(abs, range(-4, 4)) == [4, 3, 2, 1, 0, 1, 2, 3]
    print(json.dumps(sorted(set(sys.argv[2:]) & set(sys.modules))))
"""

NOT_AT_FIRST_USE = ("hmac", "_hashlib", "hashlib")
"""Modules a Pool does not use: a handshake with an authkey loads them when it happens."""


@pytest.mark.parametrize(
    "backend", [name for name in ("fork", "spawn", "forkserver") if name in available_backends()]
)
def test_a_first_pool_does_not_load_the_handshakes_hashes(backend: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, backend, *NOT_AT_FIRST_USE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
