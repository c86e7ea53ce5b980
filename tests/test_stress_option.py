"""``--procframe-stress`` runs the stress probes at full size, with a bound of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """\
import pytest

from procframe.testing.helpers import stress


@pytest.mark.stress
@pytest.mark.timeout(7)
def test_probe(request):
    timeout = request.node.get_closest_marker("timeout").args[0]
    print(f"SIZE={stress.size(10, 5000)} TIMEOUT={timeout}")


def test_not_a_probe():
    print("NOT A PROBE")
"""


def _run(tmp_path: Path, *options: str) -> str:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PROCFRAME_STRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", "-p",
         "procframe.testing", *options, "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_probes_run_small_with_the_suite_bound(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert "SIZE=10 TIMEOUT=7" in out
    assert "NOT A PROBE" in out


def test_the_stress_option_runs_only_the_probes_at_full_size(tmp_path: Path) -> None:
    out = _run(tmp_path, "-m", "stress", "--procframe-stress")
    assert "SIZE=5000 TIMEOUT=3600.0" in out
    assert "NOT A PROBE" not in out
