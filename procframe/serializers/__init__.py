"""Serializers: how objects cross between processes, chosen by name like backends.

procframe pickles with the standard pickle by default.  ``cloudpickle`` and
``dill`` (``python -m pip install 'procframe[cloudpickle]'`` or
``'procframe[dill]'``) also carry lambdas, closures, local classes and what
the interactive prompt defines; a plugin adds its own through the
``procframe_declare_serializers`` hook.  Choose one with
:func:`set_serializer`, ``PROCFRAME_SERIALIZER=name``, or per context
(``procframe.get_context("spawn", serializer="dill")``); children and pool
workers use their parent's.  Plain data goes through pickle whichever is
chosen: the serializer carries only what pickle cannot
(:mod:`procframe._core.serializing`).
"""

from __future__ import annotations

from procframe._core import serializer_registry
from procframe._core.errors import SerializerError
from procframe._core.serializer_registry import (
    PICKLE,
    SERIALIZER_ENV,
    SerializerInfo,
    available_serializers,
)
from procframe.context import get_serializer, set_serializer

__all__ = [
    "PICKLE",
    "SERIALIZER_ENV",
    "SerializerError",
    "SerializerInfo",
    "available_serializers",
    "declared_serializers",
    "get_serializer",
    "set_serializer",
]


def declared_serializers() -> dict[str, SerializerInfo]:
    """Every declared serializer, available or not, by name."""
    return dict(serializer_registry.serializers())
