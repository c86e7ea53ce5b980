"""Managers: objects held in a server process and shared by proxy (``multiprocessing.managers``).

``procframe.Manager()`` starts a :class:`SyncManager`; a :class:`BaseManager`
subclass with registered types serves custom objects, also over a network.
"""

from procframe.managers._errors import ManagerGoneError, RemoteError
from procframe.managers._manager import BaseManager, State, SyncManager
from procframe.managers._protocol import Token
from procframe.managers._proxy import AutoProxy, BaseProxy, MakeProxyType
from procframe.managers._server import Server, public_methods
from procframe.managers._shared_memory import SharedMemoryManager
from procframe.managers._types import (
    AcquirerProxy,
    Array,
    ArrayProxy,
    BarrierProxy,
    BaseListProxy,
    ConditionProxy,
    DictProxy,
    EventProxy,
    IteratorProxy,
    ListProxy,
    Namespace,
    NamespaceProxy,
    PoolProxy,
    Value,
    ValueProxy,
)

__all__ = [
    "AcquirerProxy",
    "Array",
    "ArrayProxy",
    "AutoProxy",
    "BarrierProxy",
    "BaseListProxy",
    "BaseManager",
    "BaseProxy",
    "ConditionProxy",
    "DictProxy",
    "EventProxy",
    "IteratorProxy",
    "ListProxy",
    "MakeProxyType",
    "ManagerGoneError",
    "Namespace",
    "NamespaceProxy",
    "PoolProxy",
    "RemoteError",
    "Server",
    "SharedMemoryManager",
    "State",
    "SyncManager",
    "Token",
    "Value",
    "ValueProxy",
    "public_methods",
]
