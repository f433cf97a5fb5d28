"""Fixes from a gpsd daemon, over its JSON protocol (``?WATCH={"json":true}``).

gpsd-py3, the usual Python client, is not used here: it keeps one connection in module
globals, has no timeout on connect or read (a silent daemon hangs the caller for good), and
only polls (``?POLL``), which merges half-updated epochs and drops HDOP. Streaming TPV
reports over a socket with timeouts is a few lines and gives every epoch as gpsd sends it,
stamped when it arrives.
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from datetime import UTC, datetime

from edge.backoff import Backoff
from edge.gps.sources import Clock, SourceStats, read_reconnecting
from edge.types import Fix, FixMode, FixQuality

_NS = 1_000_000_000
_MAX_LINE_BYTES = 256 * 1024
_WATCH = b'?WATCH={"enable":true,"json":true}\n'

# TPV "status" (gpsd >= 3.20).
_STATUS_QUALITY = {
    1: FixQuality.GPS,
    2: FixQuality.DGPS,
    3: FixQuality.RTK_FIXED,
    4: FixQuality.RTK_FLOAT,
    5: FixQuality.ESTIMATED,
    6: FixQuality.ESTIMATED,
    7: FixQuality.MANUAL,
    8: FixQuality.SIMULATED,
    9: FixQuality.PPS,
}


class GpsdSource:
    """A gpsd daemon at host:port; reconnects with backoff when it goes away or falls silent."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        *,
        connect_timeout_s: float = 2.0,
        silence_reconnect_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        clock: Clock = time.monotonic_ns,
    ) -> None:
        self._host = host
        self._port = port
        self._connect_timeout_s = connect_timeout_s
        self._silence_ns = int(silence_reconnect_s * _NS)
        self._backoff = Backoff(backoff_initial_s, backoff_max_s, jitter=False)
        self._clock = clock
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._ready: deque[Fix] = deque()
        self._last_data_ns = 0
        self._hdop: float | None = None
        self._sats_used: int | None = None
        self._last_key: tuple[object, ...] | None = None
        self._ever_connected = False
        self._reports = 0
        self._bad = 0
        self._ignored = 0
        self._epochs = 0
        self._reconnects = 0
        self._error: str | None = None

    @property
    def name(self) -> str:
        return f"gpsd:{self._host}:{self._port}"

    def read(self, timeout_s: float) -> Fix | None:
        def receive(remaining_s: float) -> None:
            assert self._sock is not None
            self._receive(self._sock, remaining_s)

        return read_reconnecting(
            self._ready,
            self._clock,
            self._backoff,
            timeout_s,
            connected=lambda: self._sock is not None,
            connect=self._connect,
            receive=receive,
        )

    def _connect(self, now: int) -> None:
        try:
            sock = socket.create_connection(
                (self._host, self._port), timeout=self._connect_timeout_s
            )
        except OSError as exc:
            self._error = f"cannot connect to gpsd at {self._host}:{self._port}: {exc}"
            self._backoff.failed(now)
            return
        try:
            sock.sendall(_WATCH)
        except OSError as exc:
            sock.close()
            self._error = f"gpsd at {self._host}:{self._port} refused WATCH: {exc}"
            self._backoff.failed(now)
            return
        self._sock = sock
        self._buffer = b""
        self._last_data_ns = now
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True

    def _receive(self, sock: socket.socket, remaining_s: float) -> None:
        try:
            sock.settimeout(max(0.001, min(0.2, remaining_s)))
            data = sock.recv(65536)
        except TimeoutError:
            now = self._clock()
            if now - self._last_data_ns >= self._silence_ns:
                self._lost(f"no reports from gpsd for {(now - self._last_data_ns) / _NS:.0f} s")
            return
        except OSError as exc:
            self._lost(f"gpsd connection lost: {exc}")
            return
        if not data:
            self._lost("gpsd closed the connection")
            return
        now = self._clock()
        self._last_data_ns = now
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > _MAX_LINE_BYTES:
            self._bad += 1
            self._buffer = b""
        for line in lines:
            if line.strip():
                self._handle(line, now)

    def _handle(self, line: bytes, now: int) -> None:
        try:
            report = json.loads(line)
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
            kind = report.get("class")
            if kind == "TPV":
                fix = _tpv_to_fix(report, now, self._hdop, self._sats_used)
                if fix is None:
                    self._ignored += 1  # a partial report (a fix mode but no position)
                    return
            elif kind == "SKY":
                self._note_sky(report)
                self._reports += 1
                return
            else:
                if kind == "ERROR":
                    self._error = f"gpsd: {report.get('message', 'error')}"
                self._ignored += 1
                return
        except (ValueError, TypeError, KeyError) as exc:
            self._bad += 1
            self._error = f"bad report from gpsd: {exc}"
            return
        self._reports += 1
        self._error = None
        self._backoff.succeeded()
        key = (fix.time_utc, fix.lat_deg, fix.lon_deg, fix.mode)
        if key == self._last_key:
            return  # gpsd repeats a TPV when other sentences of the epoch arrive
        if self._last_key is None or self._last_key[0] != fix.time_utc or fix.time_utc is None:
            self._epochs += 1
        self._last_key = key
        self._ready.append(fix)

    def _note_sky(self, report: dict[str, object]) -> None:
        hdop = report.get("hdop")
        if isinstance(hdop, int | float):
            self._hdop = float(hdop)
        used = report.get("uSat")
        if isinstance(used, int):
            self._sats_used = used

    def _lost(self, why: str) -> None:
        self._error = why
        self._close_socket()
        self._backoff.failed(self._clock())

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def stats(self) -> SourceStats:
        return SourceStats(
            name=self.name,
            connected=self._sock is not None,
            sentences=self._reports,
            bad_sentences=self._bad,
            ignored_sentences=self._ignored,
            epochs=self._epochs,
            reconnects=self._reconnects,
            error=self._error,
        )

    def close(self) -> None:
        self._close_socket()


def _tpv_to_fix(
    tpv: dict[str, object], now: int, hdop: float | None, sats: int | None
) -> Fix | None:
    mode = FixMode(int(tpv.get("mode", 0)))  # type: ignore[call-overload]
    time_utc = _parse_time(tpv.get("time"))
    lat, lon = _number(tpv.get("lat")), _number(tpv.get("lon"))
    has_position = mode >= FixMode.FIX_2D and lat is not None and lon is not None
    if mode >= FixMode.FIX_2D and not has_position:
        return None
    status = tpv.get("status", 1)
    quality = _STATUS_QUALITY.get(status if isinstance(status, int) else 1, FixQuality.GPS)
    alt = _number(tpv.get("altMSL"))
    return Fix(
        mono_ns=now,
        time_utc=time_utc,
        lat_deg=lat if has_position else None,
        lon_deg=lon if has_position else None,
        mode=mode,
        quality=quality if has_position else FixQuality.NONE,
        speed_mps=_number(tpv.get("speed")),
        track_deg=_number(tpv.get("track")),
        hdop=hdop,
        sats_used=sats,
        alt_msl_m=alt if alt is not None else _number(tpv.get("alt")),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
