"""Run a small program in a fresh interpreter, as a user would, under a chosen backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HELLO_BOB = """\
from procframe import Process

def f(name):
    print('hello', name)

if __name__ == '__main__':
    p = Process(target=f, args=('bob',))
    p.start()
    p.join()
"""
"""The first example of ``processing``'s documentation (``procframe`` for it, Python 3's print)."""


def script_env(backend: str) -> dict[str, str]:
    """The environment of a script run: ours, with ``PROCFRAME_BACKEND`` set to ``backend``."""
    env = dict(os.environ)
    env["PROCFRAME_BACKEND"] = backend
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def write_script(directory: Path, source: str, name: str = "script.py") -> Path:
    """Write ``source`` (dedented) to ``directory/name``."""
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def run_script(
    directory: Path, source: str, backend: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script in ``directory`` with ``backend`` as the default backend."""
    path = write_script(directory, source)
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=directory,
        env=script_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_script(directory: Path, source: str, backend: str) -> subprocess.Popen[str]:
    """Start ``source`` as a script in ``directory``; the caller waits for it."""
    path = write_script(directory, source)
    return subprocess.Popen(
        [sys.executable, str(path)],
        cwd=directory,
        env=script_env(backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pid_running(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) process; without ``/proc`` (macOS), one
    that exists (a zombie counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.isdir("/proc/self"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")
