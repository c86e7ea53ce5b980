"""The shared-memory keeper's door: only processes of its user, and a bounded number at once.

(Another user cannot be made in a test: the check is fed fake credentials.)
"""

from __future__ import annotations

import os
import select
import socket
import uuid
from collections.abc import Iterator

import pytest

from procframe._core import osutil
from procframe.posix import shm_keeper

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_PEERCRED"), reason="needs SO_PEERCRED and abstract sockets (Linux)"
)


@pytest.fixture
def keeper() -> Iterator[shm_keeper.Keeper]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(f"\0procframe-test-keeper/{uuid.uuid4().hex}".encode())
    listener.listen(8)
    listener.setblocking(False)
    me = os.getpid()
    kept = shm_keeper.Keeper(listener, me, None, osutil.process_start_time(me) or 0)
    yield kept
    for client in kept.clients.values():
        client.close()
    listener.close()


def _connect(keeper: shm_keeper.Keeper) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.settimeout(30)
    client.connect(keeper.address)
    return client


def _hung_up(client: socket.socket) -> bool:
    try:
        return client.recv(16) == b""
    except ConnectionResetError:
        return True


def test_the_keeper_refuses_a_process_of_another_user(
    keeper: shm_keeper.Keeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        osutil, "peer_credentials", lambda sock: (1, os.geteuid() + 1, os.getegid())
    )
    with _connect(keeper) as client:
        keeper._accept(select.poll())
        assert keeper.clients == {}
        assert _hung_up(client)


def test_the_keeper_serves_a_process_of_its_user(keeper: shm_keeper.Keeper) -> None:
    with _connect(keeper) as client:
        keeper._accept(select.poll())
        assert len(keeper.clients) == 1
        client.send(shm_keeper.LIST)
        keeper.serve_client(next(iter(keeper.clients)))
        assert client.recv(1 << 16) == b""  # holds no segment: the empty list
        assert _hung_up(client)


def test_the_keeper_keeps_a_bounded_number_of_clients(
    keeper: shm_keeper.Keeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shm_keeper, "MAX_CLIENTS", 2)
    poller = select.poll()
    clients = [_connect(keeper) for _ in range(3)]
    try:
        keeper._accept(poller)
        assert len(keeper.clients) == 2
        assert _hung_up(clients[0])  # the oldest, silent, made room
    finally:
        for client in clients:
            client.close()
