"""What happens when the cluster fails under a program: nothing hangs, errors say why."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT_TIMEOUT = 120.0

SCHEDULER_KILLED = """
import os, re, signal, subprocess, sys, time
import procframe as mp

def sleeper():
    time.sleep(120)

if __name__ == "__main__":
    bindir = os.path.dirname(sys.executable)
    with open("scheduler.log", "wb") as log:
        scheduler = subprocess.Popen(
            [os.path.join(bindir, "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(600):
        found = re.search(r"Scheduler at:\\s+(tcp://[0-9.]+:[0-9]+)", open("scheduler.log").read())
        if found:
            break
        time.sleep(0.1)
    address = found.group(1)
    worker = subprocess.Popen(
        [os.path.join(bindir, "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.environ["PROCFRAME_DASK_ADDRESS"] = address
    try:
        ctx = mp.get_context("dask")
        p = ctx.Process(target=sleeper)
        p.start()
        os.killpg(scheduler.pid, signal.SIGKILL)
        began = time.monotonic()
        p.join(60)
        print("joined", p.exitcode, time.monotonic() - began < 30)
        began = time.monotonic()
        try:
            ctx.Process(target=sleeper).start()
        except Exception as e:
            print(type(e).__name__, "cluster is gone" in str(e), time.monotonic() - began < 5)
    finally:
        for process in (scheduler, worker):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
"""


def test_a_scheduler_killed_ends_waits_at_once_and_the_next_call_says_so(tmp_path: Path) -> None:
    script = tmp_path / "scheduler_killed.py"
    script.write_text(textwrap.dedent(SCHEDULER_KILLED), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCFRAME_", "DASK_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "joined 255 True", done.stdout + done.stderr
    assert lines[1] == "ClusterGoneError True True", done.stdout + done.stderr
    assert "is lost" in done.stderr
