"""Sizes of the stress probes: small in every run of the suite, full with ``--procframe-stress``.

A stress probe (a test marked ``stress``) takes its counts from :func:`size`,
so ``.ci/run`` runs it in seconds and ``pytest -m stress --procframe-stress``
(``tox -e stress``) at the size that found the bug it guards against.  The
switch is the environment variable :data:`ENV` (the option sets it), so pytest-xdist
workers and the probes' own children see it too.
"""

from __future__ import annotations

import os

ENV = "PROCFRAME_STRESS"
FULL_TIMEOUT = 3600.0
"""Seconds a full-size probe may take (pytest-timeout), in place of the suite's bound."""


def full_size() -> bool:
    """True when the probes run at full size."""
    return os.environ.get(ENV, "") == "1"


def size(small: int, full: int) -> int:
    """``full`` in a full-size run, else ``small``."""
    return full if full_size() else small


def seconds(small: float, full: float) -> float:
    """A duration of a probe: ``full`` in a full-size run, else ``small``."""
    return full if full_size() else small
