"""The built-in backends: fork, spawn and forkserver.

A third-party backend subclasses :class:`procframe.backends.posix.ProcessBackend`
(or a built-in backend) and registers an instance through the ``procframe``
entry-point group.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is slow to import, and every spawned child imports this
if TYPE_CHECKING:
    from procframe.backends.posix import ProcessBackend


def builtin_backends() -> list[ProcessBackend]:
    """The plugin objects of the built-in backends."""
    from procframe.backends import fork, forkserver, spawn

    return [fork.plugin, spawn.plugin, forkserver.plugin]
