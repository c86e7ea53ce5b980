"""What runs on a Dask worker for one procframe Process: a real OS process, watched.

:func:`run_process` is the task.  It has the worker's fork server
(:mod:`procframe_dask._forkserver`) start the process on the worker's machine (in its
parent's working directory where that exists there, as a local child inherits it;
else in the worker's), serves as its agent (:mod:`procframe_dask._agent`), feeds it
the pickled Process,
forwards its stdout and stderr to the parent through a ``distributed.Queue``,
delivers the signals the parent asks for (an ``Event`` says one is waiting, a
``Variable`` holds its number), and returns the exit code (``-signum`` for a process killed by one).

A process whose parent went away ends: when the parent's client leaves the cluster
(the parent exited, was killed, or lost its scheduler) the scheduler releases the
task's key, the worker marks the running task cancelled, and :func:`run_process`
terminates the process (SIGTERM, SIGKILL after :data:`ORPHAN_GRACE`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from typing import Any

from procframe_dask import _agent, _forkserver, _liveness, _sliced
from procframe_dask._objects import NOW
from procframe_dask.cluster import ADDRESS_ENV

SIGNAL_POLL = 0.05
"""Seconds between looks for a signal the parent asked for."""
ORPHAN_GRACE = 2.0
"""Seconds an orphan gets between SIGTERM and SIGKILL."""
GET_MARGIN = 0.1
"""Seconds a get the process sent just before it died may take to reach the scheduler."""
LOST = 255
"""The exit code of a Process whose worker died under it (as of one whose cluster went)."""
AGENT_GRACE = 10.0
"""Seconds the process's agent gets to give back what the process held when it ended."""


def names(key: str) -> dict[str, str]:
    """The names of the cluster objects that belong to one process."""
    return {
        "output": f"{key}-output",
        "signal": f"{key}-signal",
        "signalled": f"{key}-signalled",
        "pid": f"{key}-pid",
        "ended": _liveness.ended_name(key),
    }


def _forward(stream: Any, which: str, output: Any) -> None:
    for line in iter(stream.readline, b""):
        output.put((which, line.decode(errors="replace")))
    stream.close()


def _abandoned(worker: Any, key: str) -> bool:
    """True once nobody wants the task ``key`` any more (its parent's client is gone)."""
    task = worker.state.tasks.get(key)
    return task is None or task.state in ("cancelled", "released", "forgotten")


def _end_orphan(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(ORPHAN_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _queues(worker: Any) -> Any:
    """``queue_of(name)``: the cluster queue ``name``, made once per name (by the agent)."""
    from distributed import Queue

    made: dict[str, Any] = {}
    lock = threading.Lock()

    def queue_of(name: str) -> Any:
        with lock:
            if name not in made:
                made[name] = Queue(name, client=worker.client)
            return made[name]

    return queue_of


def _started_before(pid: Any) -> bool:
    """True if this task ran before: its worker died, and Dask runs it again elsewhere."""
    try:
        pid.get(timeout=NOW)
    except TimeoutError:
        return False
    return True


def _lost(key: str, output: Any, ended: Any) -> int:
    """End a Process whose worker died under it: it is not run a second time (it may have
    done half its work); the parent sees :data:`LOST` and why, as when a cluster goes."""
    output.put(("stderr", f"procframe-dask: the process {key} is lost: its worker died\n"))
    output.put(None)
    ended.set()
    return LOST


def run_process(payload: bytes, key: str, cwd: str | None = None) -> int:
    """Run the Process pickled in ``payload`` as an OS process here; its exit code.

    It starts in ``cwd`` (its parent's working directory) if that is a directory on this
    machine, else in the worker's working directory.
    """
    from distributed import Event, Queue, Variable

    named = names(key)
    output = Queue(named["output"])
    if _started_before(Variable(named["pid"])):
        return _lost(key, output, Event(named["ended"]))
    signalled = Event(named["signalled"])
    from distributed import get_worker, secede

    # Out of the worker's thread pool: a Process may live long, and the program may run
    # more of them than the workers have threads.
    secede()
    worker = get_worker()
    # The child reaches the cluster as this worker does (its objects live there).
    env = {ADDRESS_ENV: worker.scheduler.address, _liveness.KEY_ENV: key}
    agent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = _forkserver.start_child(
            cwd, env, {_agent.FD_ENV: child_end.fileno()}, dict(os.environ)
        )
    finally:
        child_end.close()
    agent = _agent.serve(agent_end, _queues(worker))
    Variable(named["pid"]).set(proc.pid)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    forwarders = [
        threading.Thread(target=_forward, args=(proc.stdout, "stdout", output), daemon=True),
        threading.Thread(target=_forward, args=(proc.stderr, "stderr", output), daemon=True),
    ]
    for forwarder in forwarders:
        forwarder.start()
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:  # it died at once: its exit code says how
        pass
    while proc.poll() is None:
        if _abandoned(worker, key):
            _end_orphan(proc)
            break
        if signalled.wait(SIGNAL_POLL):
            signalled.clear()
            signum = Variable(named["signal"]).get()
            if proc.poll() is None:
                os.kill(proc.pid, int(signum))
        proc.poll()
    agent.join(AGENT_GRACE)  # what the process held is given back before it counts as ended
    Event(named["ended"]).set()
    if proc.returncode != 0:
        # It may have died waiting in a get, whose last slice still waits on the scheduler
        # and would take an item it cannot deliver: the parent's join() returns once that
        # slice is over, so what the parent puts after join() reaches a living process.
        time.sleep(_sliced.GET_SLICE + GET_MARGIN)
    for forwarder in forwarders:
        forwarder.join()
    output.put(None)  # the end of its output
    return int(proc.returncode)
