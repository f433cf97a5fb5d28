"""A TCP proxy in front of the broker that can cut connections or leave them half-open."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    up_bytes: int = 0
    cut_at: int | None = None  # cut after this many client→broker bytes
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port, and on demand:

    - ``blackhole()``: keeps every TCP connection open but forwards nothing either way, so the
      client sees a half-open link (its writes succeed, no answer ever comes);
    - ``drop_after(n)``: forwards n more client→broker bytes on the current connections, then
      cuts them, typically in the middle of a PUBLISH packet;
    - ``cut_next_connections([n1, n2, …])``: the next connections are cut after n1, n2, …
      bytes each, so that reconnects cannot outrun the test.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._forwarding = True
        self._upward = True
        self._next_cuts: list[int] = []
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stopping = False
        self.accepted = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        self._forwarding = False

    def resume(self) -> None:
        self._forwarding = True
        self._upward = True

    def mute_upward(self) -> None:
        """Swallow what clients send (their PUBACKs among it); the broker's packets still pass."""
        self._upward = False

    def drop_after(self, n_bytes: int) -> None:
        with self._lock:
            for pair in self._pairs:
                pair.up_bytes, pair.cut_at = 0, n_bytes

    def cut_next_connections(self, byte_counts: list[int]) -> None:
        with self._lock:
            self._next_cuts = list(byte_counts)

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(timeout=2)
        self._server.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._next_cuts:
                    pair.cut_at = self._next_cuts.pop(0)
                self._pairs.append(pair)
                self.accepted += 1
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(pair, src, dst, up), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._forwarding or (upward and not self._upward):
                    continue  # swallowed: the link looks alive and answers nothing
                if upward:
                    with self._lock:
                        limit = pair.cut_at
                        pair.up_bytes += len(data)
                        cut = limit is not None and pair.up_bytes >= limit
                        if limit is not None and cut:
                            data = data[: len(data) - (pair.up_bytes - limit)]
                            self.dropped += 1
                    if cut:
                        if data:
                            dst.sendall(data)
                        break
                dst.sendall(data)
        except OSError:
            pass
        pair.close()
