"""The parent's side of a Process that runs on the cluster (:class:`DaskLauncher`)."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import Any

from procframe import ProcessPicklingError
from procframe.backends import Launcher, logging_settings, spawning_payload
from procframe_dask import _remote, _wire, cluster
from procframe_dask._wire import DASK_SERIALIZER as SERIALIZER
from procframe_dask.placement import pinned_worker

PID_TIMEOUT = 60.0
"""Seconds ``start()`` waits for the worker to report the child's pid."""
OUTPUT_POLL = 1.0
"""Seconds between looks at the cluster while a child prints nothing."""


def _pickled(process: Any) -> bytes:
    """``process`` pickled as procframe pickles a message under :data:`SERIALIZER` (authkey
    included): the standard pickle, cloudpickle only for what pickle cannot carry.  A
    ``ProcessPicklingError`` naming the part that cannot cross otherwise, with the
    serializer's own error (and procframe's note on it) as its cause."""
    try:
        with spawning_payload():
            return _wire.dumps((process, logging_settings()), SERIALIZER)
    except Exception as exc:
        parts = [("target", getattr(process, "_target", None))]
        parts += [(f"args[{i}]", arg) for i, arg in enumerate(getattr(process, "_args", ()))]
        parts += [(f"kwargs[{k!r}]", v) for k, v in getattr(process, "_kwargs", {}).items()]
        culprit, refusal = "the process object", exc
        for label, value in parts:
            try:
                with spawning_payload():
                    _wire.probe(value, SERIALIZER)
            except Exception as part_exc:  # the serializer's note names this part
                culprit, refusal = f"its {label} ({value!r:.80})", part_exc
                break
        error = ProcessPicklingError(
            f"process {process.name!r} cannot start on the dask backend: {culprit} cannot be "
            f"pickled ({type(refusal).__name__}: {refusal}); a process on a cluster gets its "
            "target and arguments by pickle: pass the dask backend's objects (its Queue, "
            f"Lock, ...) and data the {SERIALIZER!r} serializer carries"
        )
        notes = getattr(refusal, "__notes__", None)
        if notes:  # procframe's note names the object and the serializers that carry it
            error.__notes__ = list(notes)  # type: ignore[attr-defined]  # (3.11+)
        raise error from refusal


def _working_directory() -> str | None:
    """This process's working directory, for the child to start in where it exists."""
    try:
        return os.getcwd()
    except OSError:  # removed under us: the child starts in its worker's own
        return None


class DaskLauncher(Launcher):
    """One Process running as an OS process on a Dask worker.

    The child starts in this process's working directory when that directory exists on
    its worker's machine (as a local child inherits it), else in the worker's own.
    """

    def __init__(self, process: Any) -> None:
        client = cluster.client()
        try:
            self._start(process, client)
        except (OSError, TimeoutError) as exc:  # CommClosedError is an OSError
            raise cluster.ClusterGoneError(
                f"lost the Dask scheduler while starting {process.name!r}: the cluster is "
                f"gone ({exc})"
            ) from exc

    def _start(self, process: Any, client: Any) -> None:
        from distributed import Queue, Variable

        self._key = f"procframe-{uuid.uuid4().hex}"
        self._names = _remote.names(self._key)
        payload = _pickled(process)
        self._output = Queue(self._names["output"], client=client)
        worker = pinned_worker()
        self._future = client.submit(
            _remote.run_process,
            payload,
            self._key,
            _working_directory(),
            pure=False,
            key=self._key,
            workers=None if worker is None else [worker],
            allow_other_workers=False,
        )
        self.returncode: int | None = None
        read_end, self._sentinel_write = os.pipe()
        self.sentinel = read_end
        self._forwarder = threading.Thread(
            target=self._forward_output, name=f"{self._key}-output", daemon=True
        )
        self._forwarder.start()
        self.pid = int(Variable(self._names["pid"], client=client).get(timeout=PID_TIMEOUT))

    def _forward_output(self) -> None:
        """Print the child's output here, as it comes; close the sentinel at its end.

        The child's exit code once its output has ended; 255, and a line on stderr, if
        the cluster went away meanwhile (nothing waits for a cluster that is gone).
        """
        try:
            while True:
                try:
                    item = self._output.get(timeout=OUTPUT_POLL)
                except TimeoutError:
                    cluster.check_alive()
                    if self._future.done():  # it ended without its last word (a worker
                        break  # lost under a pinned task...): its outcome says how
                    continue
                if item is None:
                    break
                which, text = item
                stream = sys.stdout if which == "stdout" else sys.stderr
                stream.write(text)
                stream.flush()
            self.returncode = int(self._future.result(timeout=cluster.CONNECT_TIMEOUT))
        except Exception as exc:
            sys.stderr.write(f"procframe-dask: the process {self._key} is lost: {exc}\n")
            self.returncode = 255
        finally:
            os.close(self._sentinel_write)

    def poll(self) -> int | None:
        return self.returncode if not self._forwarder.is_alive() else None

    def wait(self, timeout: float | None = None) -> int | None:
        self._forwarder.join(timeout)
        return self.poll()

    def send_signal(self, signum: int) -> None:
        from distributed import Event, Variable

        if self.poll() is not None:
            return
        client = cluster.client()
        Variable(self._names["signal"], client=client).set(int(signum))
        Event(self._names["signalled"], client=client).set()

    def close(self) -> None:
        if self.sentinel >= 0:
            fd, self.sentinel = self.sentinel, -1
            os.close(fd)
