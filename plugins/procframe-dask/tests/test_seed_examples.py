"""The seed's seven examples, unchanged but for Python 3, under ``PROCFRAME_BACKEND=dask``.

Each runs as a script in a fresh interpreter: on the session's cluster (a scheduler and
two workers started as separate processes), and on the LocalCluster the backend starts
by itself when no cluster is named.  Each must print what it prints locally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT_TIMEOUT = 180.0
"""Seconds one example may take (a LocalCluster's start included)."""

EXAMPLES = {
    "process": (
        """
        from procframe import Process
        def f(name):
            print('hello', name)
        if __name__ == '__main__':
            p = Process(target=f, args=('bob',))
            p.start()
            p.join()
        """,
        "hello bob\n",
    ),
    "queue": (
        """
        from procframe import Process, Queue
        def f(q):
            q.put([42, None, 'hello'])
        if __name__ == '__main__':
            q = Queue()
            p = Process(target=f, args=(q,))
            p.start()
            print(q.get())
            p.join()
        """,
        "[42, None, 'hello']\n",
    ),
    "pipe": (
        """
        from procframe import Process, Pipe
        def f(conn):
            conn.send([42, None, 'hello'])
            conn.close()
        if __name__ == '__main__':
            parent_conn, child_conn = Pipe()
            p = Process(target=f, args=(child_conn,))
            p.start()
            print(parent_conn.recv())
            p.join()
        """,
        "[42, None, 'hello']\n",
    ),
    "lock": (
        """
        from procframe import Process, Lock
        def f(l, i):
            l.acquire()
            print('hello world', i)
            l.release()
        if __name__ == '__main__':
            lock = Lock()
            for num in range(10):
                Process(target=f, args=(lock, num)).start()
        """,
        None,  # ten lines, in any order
    ),
    "value_array": (
        """
        from procframe import Process, Value, Array
        def f(n, a):
            n.value = 3.1415927
            for i in range(len(a)):
                a[i] = -a[i]
        if __name__ == '__main__':
            num = Value('d', 0.0)
            arr = Array('i', range(10))
            p = Process(target=f, args=(num, arr))
            p.start()
            p.join()
            print(num.value)
            print(arr[:])
        """,
        "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n",
    ),
    "manager": (
        """
        from procframe import Process, Manager
        def f(d, l):
            d[1] = '1'
            d['2'] = 2
            d[0.25] = None
            l.reverse()
        if __name__ == '__main__':
            manager = Manager()
            d = manager.dict()
            l = manager.list(range(10))
            p = Process(target=f, args=(d, l))
            p.start()
            p.join()
            print(d)
            print(l)
        """,
        "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n",
    ),
    "pool": (
        """
        from procframe import Pool
        def f(x):
            return x*x
        if __name__ == '__main__':
            pool = Pool(processes=4)
            result = pool.apply_async(f, [10])
            print(result.get(timeout=60))
            print(pool.map(f, range(10)))
        """,
        "100\n[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n",
    ),
}


def _run(tmp_path: Path, name: str, address: str | None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"example_{name}.py"  # not queue.py: it would hide the stdlib queue
    script.write_text(textwrap.dedent(EXAMPLES[name][0]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCFRAME_", "DASK_"))}
    env["PROCFRAME_BACKEND"] = "dask"
    if address is not None:
        env["PROCFRAME_DASK_ADDRESS"] = address
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )


def _check(done: subprocess.CompletedProcess[str], name: str) -> None:
    assert done.returncode == 0, done.stderr
    expected = EXAMPLES[name][1]
    if expected is None:
        assert sorted(done.stdout.splitlines()) == sorted(f"hello world {i}" for i in range(10))
    else:
        assert done.stdout == expected, done.stderr


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_on_the_cluster(tmp_path: Path, dask_cluster: str, name: str) -> None:
    _check(_run(tmp_path, name, dask_cluster), name)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_on_a_local_cluster_started_by_the_backend(tmp_path: Path, name: str) -> None:
    _check(_run(tmp_path, name, None), name)
