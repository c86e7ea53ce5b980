"""The cluster that the harness runs of a table share (:attr:`Table.cluster`).

The dask table compares procframe's ``dask`` backend with Dask's own API on the
same workers: one ``LocalCluster`` is started for the table, before its first
run (its start is not measured), each run reaches it through
``PROCFRAME_DASK_ADDRESS``, and it is closed after the table.  It lives in a
process of its own (``benchmarks/harness.py --dask-cluster``), so that this
driver never imports ``distributed`` (nor the ``multiprocessing`` it loads), and
so that one process group holds the scheduler, its workers and what they start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import IO, Any

from procframe.bench.runner import BenchError, RunHarness, harness_path, kill_group, run_harness

ADDRESS_ENV = "PROCFRAME_DASK_ADDRESS"
"""Where the dask backend, and the harness's Dask peer, find the scheduler."""

WORKERS = 2
"""Worker processes of the cluster, of one thread each: as many as every pool measured."""

START_TIMEOUT = 120.0
"""Seconds the cluster may take to start with all its workers."""

STOP_TIMEOUT = 60.0
"""Seconds the cluster may take to close before its process group is killed."""


class HostedCluster:
    """A Dask ``LocalCluster`` of :data:`WORKERS` workers in a process of its own, started by
    the first :meth:`address` and closed by :meth:`close` (or the end of a ``with``)."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
        workers: int = WORKERS,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.env = env
        self.progress = progress
        self.workers = workers
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        self._address: str | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> HostedCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def command(self) -> list[str]:
        """The command line of the process that hosts the cluster."""
        return [sys.executable, str(harness_path()), "--dask-cluster", str(self.workers)]

    def address(self) -> str:
        """The scheduler's address; the cluster is started on the first call."""
        if self._address is None:
            self._address = self._start()
        return self._address

    def _start(self) -> str:
        if self.progress is not None:
            self.progress(f"starting a Dask LocalCluster of {self.workers} workers")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=None if self.env is None else dict(self.env),
            start_new_session=True,
        )
        assert self.process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.start_timeout)
        try:
            address = str(json.loads(lines[0])["address"]) if lines else ""
        except (ValueError, KeyError, TypeError):
            address = ""
        if not address:
            why = "did not start" if lines else f"did not start within {self.start_timeout:g} s"
            log = self.log()
            self.close()
            raise BenchError(f"the Dask LocalCluster of the dask table {why}{log}")
        return address

    def log(self) -> str:
        """What the cluster's process wrote on stderr, for an error message."""
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return f"\n--- its stderr ---\n{text[-4000:]}" if text else ""

    def close(self) -> None:
        """Close the cluster (its process exits once its stdin is closed); kill its process
        group if it takes longer than :data:`STOP_TIMEOUT`, and whatever it left behind."""
        process, self.process = self.process, None
        self._address = None
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(STOP_TIMEOUT)
            except (subprocess.TimeoutExpired, OSError):
                pass
            finally:
                kill_group(process.pid)
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def on_cluster(
    kind: str,
    env: Mapping[str, str],
    timeout: float,
    progress: Callable[[str], None] | None = None,
    run: Callable[..., dict[str, Any]] = run_harness,
    cluster: Callable[..., HostedCluster] = HostedCluster,
) -> Iterator[RunHarness]:
    """A harness for the runs of a table whose :attr:`~Table.cluster` is ``kind``: ``run``
    with ``env`` and ``timeout`` and, for ``"dask"``, the address of one ``cluster``,
    started by the table's first run and closed when the ``with`` ends."""
    if not kind:
        yield partial(run, timeout=timeout, env=env)
        return
    if kind != "dask":
        raise ValueError(f"unknown cluster {kind!r}: the bench knows 'dask'")
    with cluster(env, progress) as hosted:

        def run_on_cluster(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
            on = {**env, ADDRESS_ENV: hosted.address()}
            return run(impl, case, method, iterations, timeout=timeout, env=on)

        yield run_on_cluster
