"""Shared memory attachable by name: ``SharedMemory`` and ``ShareableList``.

The API of ``multiprocessing.shared_memory``; the code lives in
:mod:`procframe.posix.shared_memory`.
"""

from __future__ import annotations

from procframe.posix.shared_memory import ShareableList, SharedMemory

__all__ = ["ShareableList", "SharedMemory"]
