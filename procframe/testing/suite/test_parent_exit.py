"""What happens to children when their parent exits, normally or killed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from procframe.testing.helpers.scripts import HELLO_BOB, pid_running, run_script, start_script
from procframe.testing.helpers.targets import read_report

DEATH_DEADLINE = 15.0


def _wait_gone(pids: list[int], deadline: float = DEATH_DEADLINE) -> list[int]:
    end = time.monotonic() + deadline
    alive = list(pids)
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [pid for pid in alive if pid_running(pid)]
    return alive


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            import os

            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.core
def test_the_documented_hello_example_prints_hello_bob(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(tmp_path, HELLO_BOB, procframe_backend)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello bob\n", "")


def test_normal_exit_stops_daemons_and_joins_the_rest(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        import procframe
        from procframe.testing.helpers import targets

        if __name__ == '__main__':
            daemon = procframe.Process(target=targets.sleep_forever, args=('daemon',), daemon=True)
            daemon.start()
            worker = procframe.Process(target=targets.sleep_then_mark, args=(0.5, 'worker'))
            worker.start()
            targets.read_report('daemon')
            targets.report('pids', [daemon.pid, worker.pid])
        """,
        procframe_backend,
    )
    assert result.returncode == 0, result.stderr
    daemon_pid, worker_pid = read_report(tmp_path / "pids")
    assert (tmp_path / "worker").read_text() == "done"  # joined, not killed
    leftover = _wait_gone([daemon_pid, worker_pid])
    _kill_all(leftover)
    assert leftover == []


@pytest.mark.requires("parent_death")
def test_children_do_not_outlive_a_killed_parent(procframe_backend: str, tmp_path: Path) -> None:
    parent = start_script(
        tmp_path,
        """
        import os, time
        import procframe
        from procframe._core.process import service_pids
        from procframe.testing.helpers import targets

        if __name__ == '__main__':
            daemon = procframe.Process(target=targets.sleep_forever, args=('d',), daemon=True)
            worker = procframe.Process(target=targets.sleep_forever, args=('w',))
            daemon.start()
            worker.start()
            targets.read_report('d')
            targets.read_report('w')
            helpers = sorted(service_pids())
            targets.report('pids', {'parent': os.getpid(), 'children': [daemon.pid, worker.pid],
                                    'helpers': helpers})
            time.sleep(600)
        """,
        procframe_backend,
    )
    try:
        pids = read_report(tmp_path / "pids", timeout=60)
        parent.kill()
        parent.wait(60)
        leftover = _wait_gone(pids["children"] + pids["helpers"])
        _kill_all(leftover)
        assert leftover == [], f"still running after the parent was killed: {leftover}"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.communicate(timeout=60)
