"""What every object of the ``threads`` backend has: it is shared, never pickled."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Shared:
    """Refuses to be pickled: the threads of this process share the object itself."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a {type(self).__name__} of the 'threads' backend is shared by the threads of "
            "this process, not pickled; make objects for other processes with their own "
            "backend's context"
        )
