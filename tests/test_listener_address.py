"""Where a Listener made without an address listens, and what it leaves behind."""

from __future__ import annotations

import os
import stat
import sys
import threading
from typing import Any

import pytest

from procframe.connection import Client, Listener

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets")


@linux
def test_an_authenticating_listener_takes_an_abstract_address() -> None:
    """Nothing in the filesystem: a killed server (a manager's, say) leaves nothing behind."""
    with Listener(authkey=b"key") as listener:
        assert isinstance(listener.address, bytes) and listener.address.startswith(b"\0")
        accepted: list[Any] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()))
        thread.start()
        with Client(listener.address, authkey=b"key") as client:
            thread.join(60)
            client.send("over an abstract address")
            assert accepted[0].recv() == "over an abstract address"
            accepted[0].close()


def test_a_listener_without_a_key_listens_in_a_private_directory() -> None:
    """Anyone could connect to an abstract address: a listener that checks nobody stays
    behind a directory only its user can enter, removed on close."""
    listener = Listener()
    path = listener.address
    assert isinstance(path, str)
    directory = os.path.dirname(path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    listener.close()
    assert not os.path.exists(directory)
