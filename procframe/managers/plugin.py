"""The default ``procframe_make_manager``: a started SyncManager, its server under the context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procframe._core.hookspecs import hookimpl

if TYPE_CHECKING:
    from procframe.context import Context
    from procframe.managers import SyncManager


@hookimpl(trylast=True)
def procframe_make_manager(ctx: Context) -> SyncManager:
    from procframe.managers import SyncManager

    manager = SyncManager(ctx=ctx)
    manager.start()
    return manager
