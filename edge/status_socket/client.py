"""The screen's side: a RecorderControl for a recorder in another process."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.status import Status
from edge.status_socket.protocol import (
    RECORDER_UNREACHABLE,
    RecorderUnreachable,
    check_path_length,
    encode_line,
)

log = logging.getLogger(__name__)

# The server makes room for a new client by dropping the one silent the longest; a screen
# says "status" this often so that idle connections, not the screen, are the ones dropped.
PING_INTERVAL_S = 1.0
_PING_REQ = "ping"


class RemoteRecorder:
    """A ``RecorderControl`` for a recorder in another process, reached through its socket.

    ``status()`` never waits: it returns the newest snapshot a background thread received.
    When the recorder stops answering, the snapshot says so (``recording=False`` and the
    ``recorder_unreachable`` alert) and the thread keeps reconnecting.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        stale_after_s: float = 2.0,
        reply_timeout_s: float = 5.0,
        reconnect_interval_s: float = 0.5,
    ) -> None:
        self.path = Path(path)
        check_path_length(self.path)
        self._stale_after_s = stale_after_s
        self._reply_timeout_s = reply_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._send_lock = threading.Lock()  # the reader pings while a command may be sending
        self._sock: socket.socket | None = None
        self._latest = Status()
        self._latest_mono = 0.0
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_req = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0

    def connect(self, timeout_s: float = 3.0) -> RemoteRecorder:
        """Start the feed; raises RecorderUnreachable if no status arrives within timeout_s."""
        self._thread = threading.Thread(target=self._run, name="remote-recorder", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.connected:
                return self
            time.sleep(0.02)
        self.close()
        raise RecorderUnreachable(
            f"no recorder answers at {self.path} (is `roadpatrol run` running with this data "
            f"directory?)"
        )

    def close(self) -> None:
        self._stop.set()
        self._shutdown_socket()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> RemoteRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        with self._lock:
            fresh = time.monotonic() - self._latest_mono < self._stale_after_s
            return self._sock is not None and self._latest_mono > 0 and fresh

    # -- RecorderControl -----------------------------------------------------------------

    def status(self) -> Status:
        with self._lock:
            latest = self._latest
        if self.connected:
            return latest
        return replace(latest, recording=False, alerts=(*latest.alerts, RECORDER_UNREACHABLE))

    def mark_manual(self) -> str | None:
        reply = self._command("mark")
        if reply is None or not reply.get("ok"):
            return None
        finding_id = reply.get("finding_id")
        return str(finding_id) if finding_id is not None else None

    def set_paused(self, paused: bool) -> None:
        reply = self._command("pause" if paused else "resume")
        if reply is None:
            raise RecorderUnreachable(f"no answer from the recorder at {self.path}")
        if not reply.get("ok"):
            raise RuntimeError(
                f"recorder refused to {'pause' if paused else 'resume'}: {reply.get('error')}"
            )

    # -- plumbing ------------------------------------------------------------------------

    def _command(self, cmd: str) -> dict[str, Any] | None:
        with self._command_lock:
            req = self._next_req
            self._next_req += 1
            with self._lock:
                sock = self._sock
            if sock is None:
                return None
            try:
                with self._send_lock:
                    sock.sendall(encode_line({"cmd": cmd, "req": req}))
            except OSError:
                return None
            deadline = time.monotonic() + self._reply_timeout_s
            while (left := deadline - time.monotonic()) > 0:
                try:
                    reply = self._replies.get(timeout=left)
                except queue.Empty:
                    break
                if reply.get("req") == req:  # older replies belong to timed-out commands
                    return reply
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                self._stop.wait(self._reconnect_interval_s)
                continue
            with self._lock:
                self._sock = sock
            self.connects += 1
            try:
                self._read_lines(sock)
            finally:
                self._shutdown_socket()
            self._stop.wait(self._reconnect_interval_s)

    def _read_lines(self, sock: socket.socket) -> None:
        buf = b""
        next_ping = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + PING_INTERVAL_S
                try:
                    with self._send_lock:
                        sock.sendall(encode_line({"cmd": "status", "req": _PING_REQ}))
                except OSError:
                    return
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                self._handle_line(raw)

    def _handle_line(self, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
            if msg.get("type") == "status":
                status = Status.from_json(json.dumps(msg["status"]))
                with self._lock:
                    self._latest, self._latest_mono = status, time.monotonic()
            elif msg.get("type") == "reply" and msg.get("req") != _PING_REQ:
                self._replies.put(msg)
        except (ValueError, KeyError, TypeError) as exc:
            # A newer recorder may send more than this screen understands; skip, keep going.
            log.warning("status socket: ignoring a line the screen cannot read: %s", exc)

    def _shutdown_socket(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
