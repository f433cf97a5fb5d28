"""Cutting an idle socket wait short from another thread: the one waker of the project.

The publisher thread runs paho's network loop itself and, with nothing in flight, waits in
select() for the broker or for its next look at the outbox; the status socket's server waits
in a selector for its clients. ``set()`` (new records, a stop) writes a byte here so that the
wait ends at once instead of at its timeout.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any


class SelectWaker:
    """A socket pair another thread writes to, so that an idle select() returns at once."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway), or closed
            self._w.send(b"x")

    def wait(self, sock: Any, timeout_s: float) -> None:
        """Until ``sock`` is readable, ``set()`` is called, or ``timeout_s`` passes."""
        if sock is None or getattr(sock, "pending", lambda: 0)():
            return  # no socket (the loop reports it), or TLS bytes already decrypted
        try:
            readable, _, _ = select.select([sock, self._r], [], [], timeout_s)
        except (OSError, ValueError):  # the socket just closed: the network loop reports it
            return
        if self._r in readable:
            self.drain()

    def fileno(self) -> int:
        """For a selector: readable once ``set()`` was called (then call ``drain()``)."""
        return self._r.fileno()

    def drain(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: drained
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        self._r.close()
        self._w.close()
