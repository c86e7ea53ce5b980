"""The error of what the ``threads`` backend cannot do (procframe's :class:`NotSupportedError`)."""

from __future__ import annotations

from procframe._core.errors import NotSupportedError

__all__ = ["NotSupportedError"]
