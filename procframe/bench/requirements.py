"""What some benchmark rows need of the machine, and why a machine falls short.

A row names its requirements (:attr:`procframe.bench.tables.Row.requires`);
:func:`missing` tells, before any harness run, why the row cannot be measured
here, and the row is skipped with that reason instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

NUMPY = "numpy"
"""numpy importable by the harness (the same interpreter as this one)."""

CLOUDPICKLE = "cloudpickle"
DILL = "dill"
"""The packages of procframe's serializers of the same names (the serializers table)."""

MULTIPROCESS = "multiprocess"
LOKY = "loky"
"""The peers the serializers table compares procframe with, where the standard library cannot
run a row: ``multiprocess`` (the standard library's code with dill), loky (cloudpickle)."""

PACKAGES = (NUMPY, CLOUDPICKLE, DILL, MULTIPROCESS, LOKY)
"""The requirements that are a package importable by the harness: all in the bench extra."""

DISTRIBUTED = "distributed"
PROCFRAME_DASK = "procframe_dask"
"""The packages of the dask table: Dask's ``distributed`` (the peer, and what the backend runs
on) and the plugin that registers procframe's ``dask`` backend (``plugins/procframe-dask``)."""

PLUGIN_DIRECTORY = "./plugins/procframe-dask"
"""Where the dask backend's distribution is, in a checkout of procframe."""

AVAILABLE_MEMORY = "available memory"
"""At least :data:`MEMORY_NEEDED` bytes of available memory (``MemAvailable``)."""

PSS = "pss"
"""``/proc/<pid>/smaps_rollup``, the proportional set size of a process (Linux 4.14)."""

MEMORY_NEEDED = 8 << 30
"""Bytes of available memory the 1 GiB rows need: the standard library holds three or four
copies of the array at its peak, and the machine has others to run."""

MEMINFO = "/proc/meminfo"
SMAPS_ROLLUP = "/proc/self/smaps_rollup"


def package_missing(name: str) -> str:
    """Why the package ``name`` cannot be imported here, or ``""``."""
    from importlib.util import find_spec

    if find_spec(name) is not None:
        return ""
    return (
        f"{name} is not installed: pip install {name} "
        "(or the bench extra, pip install -e '.[bench]')"
    )


def distributed_missing() -> str:
    """Why Dask's ``distributed`` cannot be imported here, or ``""``."""
    from importlib.util import find_spec

    if find_spec(DISTRIBUTED) is not None:
        return ""
    return (
        f"{DISTRIBUTED} is not installed: pip install {DISTRIBUTED} (or the dask backend, "
        f"python -m pip install {PLUGIN_DIRECTORY}, which depends on it)"
    )


def dask_backend_missing() -> str:
    """Why procframe's ``dask`` backend (the ``procframe_dask`` plugin, registered in the
    ``procframe`` entry-point group) is not installed here, or ``""``."""
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    if find_spec(PROCFRAME_DASK) is not None and entry_points(group="procframe", name="dask"):
        return ""
    return (
        f"{PROCFRAME_DASK} (procframe's dask backend) is not installed: "
        f"python -m pip install {PLUGIN_DIRECTORY}, from a checkout of procframe"
    )


def numpy_missing() -> str:
    """Why numpy cannot be used, or ``""``."""
    return package_missing(NUMPY)


def available_memory(meminfo: str = MEMINFO) -> int | None:
    """``MemAvailable`` of ``meminfo`` in bytes; None where the file does not say."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_missing(meminfo: str = MEMINFO) -> str:
    """Why this machine cannot spare :data:`MEMORY_NEEDED` bytes, or ``""``."""
    available = available_memory(meminfo)
    if available is None:
        return (
            f"needs {MEMORY_NEEDED / (1 << 30):g} GiB of available memory: {meminfo} does not say"
        )
    if available < MEMORY_NEEDED:
        return (
            f"needs {MEMORY_NEEDED >> 30} GiB of available memory, "
            f"this machine has {available / (1 << 30):.1f} GiB"
        )
    return ""


def pss_missing(smaps_rollup: str = SMAPS_ROLLUP) -> str:
    """Why the Pss of a process cannot be read here, or ``""``."""
    try:
        with open(smaps_rollup, "rb") as f:
            if b"\nPss:" in f.read():
                return ""
    except OSError:
        pass
    return f"needs {smaps_rollup.replace('self', '<pid>')} to measure Pss (Linux 4.14 or later)"


REQUIREMENTS: dict[str, Callable[[], str]] = {
    NUMPY: numpy_missing,
    **{name: partial(package_missing, name) for name in PACKAGES if name != NUMPY},
    DISTRIBUTED: distributed_missing,
    PROCFRAME_DASK: dask_backend_missing,
    AVAILABLE_MEMORY: memory_missing,
    PSS: pss_missing,
}
"""Each requirement's check: why the machine falls short, ``""`` if it does not."""


def missing(requires: tuple[str, ...]) -> str:
    """Why the first requirement of ``requires`` that this machine misses is missing, or
    ``""`` if it has them all."""
    for name in requires:
        reason = REQUIREMENTS[name]()
        if reason:
            return reason
    return ""
