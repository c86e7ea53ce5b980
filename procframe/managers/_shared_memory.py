"""SharedMemoryManager: shared-memory segments that live as long as the manager's server.

The server creates each segment and holds it until it is released or the
server stops, when it unlinks every segment it still holds (as the standard
library's does); the caller gets the segment attached by name.
"""

from __future__ import annotations

from procframe._core.process import on_exit_before_services
from procframe.managers._manager import BaseManager
from procframe.posix.shared_memory import ShareableList, SharedMemory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SegmentKeeper:
    """In the server: the segments it created for clients, by name."""

    def __init__(self) -> None:
        self._segments: dict[str, SharedMemory] = {}
        # Unlinked before the server exits: they must not outlive it (in the program's keeper).
        on_exit_before_services(self.release_all)

    def create(self, size: int) -> str:
        segment = SharedMemory(create=True, size=size)
        self._segments[segment.name] = segment
        return segment.name

    def create_list(self, sequence: Any) -> str:
        segment = ShareableList(sequence).shm
        self._segments[segment.name] = segment
        return segment.name

    def release(self, name: str) -> None:
        segment = self._segments.pop(name, None)
        if segment is not None:
            try:
                segment.unlink()
            except FileNotFoundError:  # a client unlinked it already
                pass
            segment.close()

    def release_all(self) -> None:
        for name in list(self._segments):
            self.release(name)


_keeper: SegmentKeeper | None = None


def _the_keeper() -> SegmentKeeper:
    """The server's one SegmentKeeper."""
    global _keeper
    if _keeper is None:
        _keeper = SegmentKeeper()
    return _keeper


class SharedMemoryManager(BaseManager):
    """A manager whose ``SharedMemory`` and ``ShareableList`` segments live until it shuts down."""

    def _keeper(self) -> Any:
        return self._create("SegmentKeeper")

    def SharedMemory(self, size: int) -> SharedMemory:
        """A new segment of ``size`` bytes, held by the server until shutdown."""
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"size must be a positive int, got {size!r}")
        return SharedMemory(self._keeper().create(size))

    def ShareableList(self, sequence: Any) -> ShareableList[Any]:
        """A new ShareableList of ``sequence``, held by the server until shutdown."""
        return ShareableList(name=self._keeper().create_list(sequence))

    def release_segment(self, name: str) -> None:
        """Let the server drop the segment ``name`` before shutdown."""
        self._keeper().release(name)


SharedMemoryManager.register("SegmentKeeper", _the_keeper, create_method=False)
