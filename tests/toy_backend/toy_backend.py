"""A third-party procframe backend, installed by tests/test_third_party_backend.py.

Entry point: ``[procframe] toy = toy_backend:plugin``.  Its children are fresh
interpreters (it derives from spawn), so the bootstrap observer below reaches a
child only through the entry point.
"""

from __future__ import annotations

import os
from pathlib import Path

import procframe
from procframe.backends import BackendInfo
from procframe.backends.spawn import SpawnBackend

MARKER_ENV = "TOY_BACKEND_MARKER"
DESCRIPTION = "toy: a spawn backend from a third-party distribution"


class ToyBackend(SpawnBackend):
    name = "toy"
    description = DESCRIPTION

    @procframe.hookimpl
    def procframe_child_bootstrap(self, process: procframe.Process, backend: BackendInfo) -> None:
        marker = os.environ.get(MARKER_ENV)
        if marker:
            Path(marker).write_text(
                f"{os.getpid()} {backend.name} {process.name}", encoding="utf-8"
            )


plugin = ToyBackend()
