"""What procframe could have named in ``/dev/shm``: the leak checks compare it before and after.

Other programs come and go in ``/dev/shm`` (the named semaphores of another
program's ``multiprocessing``, say), so the checks look only at the names
procframe makes: on Linux none at all (memory is passed by descriptor), and
``pf``-prefixed ones where it falls back to named POSIX shared memory.
"""

from __future__ import annotations

from pathlib import Path

PREFIXES = ("pf", "sem.pf", "procframe")


def procframe_names(*chosen: str) -> set[str]:
    """The entries of ``/dev/shm`` procframe could have made, and those named in ``chosen``."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return set()
    return {p.name for p in shm.iterdir() if p.name.startswith(PREFIXES) or p.name in chosen}
