"""The recorder's side: stream Status lines to local screens and run their commands."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.status_socket.guard import MarkBucket, parse_command
from edge.status_socket.protocol import (
    COMMANDS,
    MAX_LINE_BYTES,
    MAX_PENDING_REPLIES,
    PROTOCOL_VERSION,
    RecorderControl,
    check_path_length,
    encode_line,
)
from edge.waker import SelectWaker

log = logging.getLogger(__name__)


@dataclass
class _Client:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    sending: bytes = b""
    replies: deque[bytes] = field(default_factory=deque)
    latest_status: bytes | None = None
    dropped_statuses: int = 0
    # When it last sent us anything (or connected): the longest-silent one makes room, and
    # one that never said a word goes first (a screen pings as it connects and every second).
    last_input_mono: float = field(default_factory=time.monotonic)
    spoke: bool = False
    marks: MarkBucket = field(default_factory=MarkBucket)


class StatusServer:
    """Streams the recorder's Status to local clients and runs their commands.

    One thread serves every client with non-blocking sockets: a client that stops reading
    only ever has the newest status waiting for it (older ones are dropped and counted), so
    a stuck screen can neither slow the recorder nor grow its memory. Commands are bounded
    (``guard.parse_command``), marks are rate-limited per client and in all, a full house
    makes room by dropping a client that never spoke, else the one silent the longest (a
    screen pings as it connects and every second), a client whose handling fails is dropped
    alone, and a loop that dies anyway restarts.
    """

    def __init__(
        self,
        control: RecorderControl,
        path: Path | str,
        *,
        rate_hz: float = 4.0,
        max_clients: int = 8,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"status socket rate_hz must be > 0, got {rate_hz}")
        self.path = Path(path)
        check_path_length(self.path)
        self._control = control
        self._period_s = 1.0 / rate_hz
        self._max_clients = max_clients
        self._clients: dict[int, _Client] = {}
        self._clients_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._waker = SelectWaker()  # stop() ends the selector wait at once
        self.dropped_statuses = 0
        self.status_errors = 0
        self.refused_marks = 0
        self.evicted_clients = 0
        self.restarts = 0
        # Reconnecting must not buy a script a fresh bucket: a second, wider one for everyone.
        self._all_marks = MarkBucket(burst=2 * MarkBucket.burst, refill_s=MarkBucket.refill_s / 2)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._listener = self._bind()
        self._thread = threading.Thread(target=self._serve, name="status-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._waker.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for client in list(self._clients.values()):
            self._close_client(client)
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._waker.close()

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client_count(self) -> int:
        with self._clients_lock:
            return len(self._clients)

    def _bind(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _someone_listens(self.path):
                raise RuntimeError(f"another recorder already serves status at {self.path}")
            # Left behind by a recorder that died (kill -9, power loss): safe to replace.
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        # Owner and group: a screen may run as another user of the recorder's group.
        os.chmod(self.path, 0o660)
        listener.listen(self._max_clients)
        listener.setblocking(False)
        return listener

    # -- serving -------------------------------------------------------------------------

    def _serve(self) -> None:
        """Serve until stopped; a loop that dies is logged and started again, so one bad
        moment never leaves every later screen with "no recorder answers"."""
        while not self._stop.is_set():
            try:
                self._serve_once()
            except Exception:
                log.exception("status socket server loop failed; restarting it")
            if self._stop.is_set():
                return
            self.restarts += 1
            # Its selector is gone with it: the screens reconnect by themselves.
            for client in list(self._clients.values()):
                self._close_client(client)
            self._stop.wait(0.2)

    def _serve_once(self) -> None:
        assert self._listener is not None
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        sel.register(self._waker, selectors.EVENT_READ, None)
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    self._broadcast()
                    next_tick = max(next_tick + self._period_s, now)
                self._update_interest(sel)
                for key, events in sel.select(timeout=max(0.0, next_tick - time.monotonic())):
                    if key.fileobj is self._listener:
                        self._accept(sel)
                    elif key.fileobj is self._waker:
                        self._waker.drain()
                    else:
                        self._serve_client(key.data, events, sel)
        finally:
            sel.close()

    def _serve_client(self, client: _Client, events: int, sel: selectors.BaseSelector) -> None:
        try:
            if events & selectors.EVENT_READ:
                self._read(client, sel)
            if events & selectors.EVENT_WRITE and client.sock.fileno() >= 0:
                self._write(client, sel)
        except Exception:
            # Whatever one client provoked costs that client its connection, nobody else.
            log.exception("status socket: dropping a client whose request failed")
            self._drop(client, sel)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.client_count >= self._max_clients:
            self._evict_most_idle(sel)
        sock.setblocking(False)
        client = _Client(sock)
        client.replies.append(encode_line({"type": "hello", "protocol": PROTOCOL_VERSION}))
        with self._clients_lock:
            self._clients[sock.fileno()] = client
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        # A new screen should not wait a whole period for its first picture.
        self._queue_status(client, self._status_line())

    def _evict_most_idle(self, sel: selectors.BaseSelector) -> None:
        """Idle connections must not lock the real screen out: a connection that never said
        anything goes first, the oldest of them, then the one silent the longest. A screen
        pings as it connects, so a burst of idle connects within one ping interval cannot
        push it out (by silence alone it would be the longest silent after that burst)."""
        with self._clients_lock:
            oldest = min(
                self._clients.values(), key=lambda c: (c.spoke, c.last_input_mono), default=None
            )
        if oldest is not None:
            self.evicted_clients += 1
            log.warning(
                "status socket: %d clients; dropping one that never spoke or is silent longest",
                self._max_clients,
            )
            self._drop(oldest, sel)

    def _read(self, client: _Client, sel: selectors.BaseSelector) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client, sel)
            return
        client.inbuf += data
        client.last_input_mono, client.spoke = time.monotonic(), True
        self._handle_lines(client)
        if b"\n" not in client.inbuf and len(client.inbuf) > MAX_LINE_BYTES:
            log.warning("status socket: dropping a client that sends no line ends")
            self._drop(client, sel)

    def _handle_lines(self, client: _Client) -> None:
        """Answer the complete lines waiting, as far as the reply queue allows; the rest wait
        (and the client is not read) until it has taken its replies: back-pressure on that
        client alone, whose writes then block, instead of memory or other clients."""
        while len(client.replies) < MAX_PENDING_REPLIES and b"\n" in client.inbuf:
            raw, _, rest = bytes(client.inbuf).partition(b"\n")
            client.inbuf = bytearray(rest)
            self._handle(client, raw)

    def _write(self, client: _Client, sel: selectors.BaseSelector) -> None:
        while True:
            if not client.sending:
                if client.replies:
                    client.sending = client.replies.popleft()
                elif client.latest_status is not None:
                    client.sending, client.latest_status = client.latest_status, None
                else:
                    return
            try:
                sent = client.sock.send(client.sending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(client, sel)
                return
            client.sending = client.sending[sent:]
            if client.sending:
                return
            self._handle_lines(client)

    def _update_interest(self, sel: selectors.BaseSelector) -> None:
        for client in list(self._clients.values()):
            wants_write = bool(client.sending or client.replies or client.latest_status)
            wants_read = len(client.replies) < MAX_PENDING_REPLIES
            events = (selectors.EVENT_READ if wants_read else 0) | (
                selectors.EVENT_WRITE if wants_write else 0
            )
            with contextlib.suppress(KeyError, ValueError):
                if sel.get_key(client.sock).events != events:
                    sel.modify(client.sock, events, client)

    def _drop(self, client: _Client, sel: selectors.BaseSelector) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(client.sock)
        self._close_client(client)

    def _close_client(self, client: _Client) -> None:
        with self._clients_lock:
            for fd, known in list(self._clients.items()):
                if known is client:
                    del self._clients[fd]
        client.sock.close()

    # -- content -------------------------------------------------------------------------

    def _status_line(self) -> bytes | None:
        try:
            status = self._control.status()
        except Exception:
            self.status_errors += 1
            log.exception("status socket: recorder status() failed")
            return None
        return f'{{"type": "status", "status": {status.to_json()}}}\n'.encode()

    def _broadcast(self) -> None:
        if not self._clients:
            return
        line = self._status_line()
        for client in list(self._clients.values()):
            self._queue_status(client, line)

    def _queue_status(self, client: _Client, line: bytes | None) -> None:
        if line is None:
            return
        if client.latest_status is not None:
            client.dropped_statuses += 1
            self.dropped_statuses += 1
        client.latest_status = line

    def _handle(self, client: _Client, raw: bytes) -> None:
        cmd, req = parse_command(raw)
        if cmd is None:
            return
        reply: dict[str, Any] = {"type": "reply", "cmd": cmd, "req": req}
        try:
            if cmd == "mark" and not self._may_mark(client):
                reply.update(ok=False, error=_TOO_MANY_MARKS)
            elif cmd == "mark":
                finding_id = self._control.mark_manual()
                reply.update(ok=finding_id is not None, finding_id=finding_id)
                if finding_id is None:
                    reply["error"] = "the recorder could not store a manual finding"
            elif cmd in ("pause", "resume"):
                self._control.set_paused(cmd == "pause")
                reply["ok"] = True
            elif cmd == "status":
                self._queue_status(client, self._status_line())
                reply["ok"] = True
            else:
                reply.update(
                    ok=False,
                    error=f"unknown command {cmd!r}; expected one of {', '.join(COMMANDS)}",
                )
        except Exception as exc:
            log.exception("status socket: command %r failed", cmd)
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        client.replies.append(encode_line(reply))

    def _may_mark(self, client: _Client) -> bool:
        if client.marks.take() and self._all_marks.take():
            return True
        self.refused_marks += 1
        if self.refused_marks in (1, 10) or self.refused_marks % 100 == 0:
            log.warning("status socket: %d marks refused (too fast)", self.refused_marks)
        return False


_TOO_MANY_MARKS = (
    f"too many marks: at most {MarkBucket.burst} at once, then one every {MarkBucket.refill_s:g} s"
)


def _someone_listens(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()
