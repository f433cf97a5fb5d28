"""Where fixes come from: one interface, several receivers.

Every source's ``read(timeout_s)`` returns the next fix epoch or None when none arrived in
time; it never raises for a broken device or a bad line. Sources reopen lost devices
themselves, with a growing pause between tries, and say what is wrong in ``stats().error``.
Only a replayed log can end; it raises ``EndOfFixes`` then.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Protocol, runtime_checkable

import serial

from edge.backoff import Backoff
from edge.gps.epoch import NmeaCounters, NmeaStreamDecoder
from edge.types import Fix

_NS = 1_000_000_000
Clock = Callable[[], int]


class EndOfFixes(EOFError):
    """A replayed log has no more epochs."""


class FixSourceError(Exception):
    """A source that cannot even be set up (e.g. the NMEA log file does not exist)."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    name: str
    connected: bool = False
    sentences: int = 0  # valid NMEA sentences, or gpsd reports
    bad_sentences: int = 0  # garbage, truncated, wrong checksum, malformed
    ignored_sentences: int = 0
    epochs: int = 0
    reconnects: int = 0
    error: str | None = None
    ended: bool = False


@runtime_checkable
class FixSource(Protocol):
    @property
    def name(self) -> str: ...

    def read(self, timeout_s: float) -> Fix | None:
        """The next fix epoch, or None when none arrived within ``timeout_s``."""
        ...

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...


def _stats_from(name: str, c: NmeaCounters, **kw: object) -> SourceStats:
    return SourceStats(
        name=name,
        sentences=c.sentences,
        bad_sentences=c.bad_sentences,
        ignored_sentences=c.ignored_sentences,
        epochs=c.epochs,
        **kw,  # type: ignore[arg-type]
    )


def read_reconnecting(
    ready: deque[Fix],
    clock: Clock,
    backoff: Backoff,
    timeout_s: float,
    *,
    connected: Callable[[], bool],
    connect: Callable[[int], None],
    receive: Callable[[float], None],
) -> Fix | None:
    """The read loop of a live source: hand out a ready fix, else (re)connect when the backoff
    allows, else receive until the deadline. Never raises for a lost device."""
    deadline = clock() + int(timeout_s * _NS)
    while True:
        if ready:
            return ready.popleft()
        now = clock()
        if now >= deadline:
            return None
        if not connected():
            if now < backoff.not_before_ns:
                time.sleep((min(deadline, backoff.not_before_ns) - now) / _NS)
            else:
                connect(now)
            continue
        receive((deadline - now) / _NS)


class UnreadableLogSource:
    """Stands in for an NMEA log that cannot be read, so recording goes on without fixes
    (frames ungeotagged, sampled by time) and the status says why."""

    def __init__(self, path: Path, error: str) -> None:
        self._stats = SourceStats(name=f"nmea-log:{path}", error=error, ended=True)

    @property
    def name(self) -> str:
        return self._stats.name

    def read(self, timeout_s: float) -> Fix | None:
        del timeout_s
        raise EndOfFixes(self._stats.error or "unreadable NMEA log")

    def stats(self) -> SourceStats:
        return self._stats

    def close(self) -> None:
        pass


class NmeaReplaySource:
    """An NMEA log replayed at the receiver's own pace (``speed`` × real time; 0 = no waiting).

    Each fix is stamped with the monotonic clock at the moment it is handed out, so frames
    captured alongside the replay are geotagged as if the receiver were live. Gaps in the
    log longer than ``max_wait_s`` are replayed as one second.
    """

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 1.0,
        loop: bool = False,
        max_wait_s: float = 5.0,
        clock: Clock = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed < 0:
            raise ValueError("replay speed must be >= 0")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FixSourceError(f"cannot read NMEA log {path}: {exc.strerror or exc}") from exc
        decoder = NmeaStreamDecoder(accept_comments=True)
        self._epochs = decoder.feed(data, 0) + decoder.finish(0)
        self._counters = decoder.counters()
        self._gaps_s = [1.0] + [_replay_gap_s(a, b, max_wait_s) for a, b in pairwise(self._epochs)]
        self._path = Path(path)
        self._speed = speed
        self._loop = loop
        self._clock = clock
        self._sleep = sleep
        self._index = 0
        self._laps = 0
        self._due_ns: int | None = None
        self._handed_out = 0

    @property
    def name(self) -> str:
        return f"nmea_file:{self._path}"

    def __len__(self) -> int:
        return len(self._epochs)

    def read(self, timeout_s: float) -> Fix | None:
        if self._index >= len(self._epochs):
            if not self._loop or not self._epochs:
                raise EndOfFixes(str(self._path))
            self._index = 0
            self._laps += 1
        now = self._clock()
        if self._due_ns is None:
            self._due_ns = now
        if self._speed > 0 and self._due_ns > now:
            self._sleep(min(timeout_s, (self._due_ns - now) / _NS))
            now = self._clock()
            if now < self._due_ns:
                return None
        template = self._epochs[self._index]
        self._index += 1
        self._handed_out += 1
        if self._speed > 0 and self._index < len(self._epochs):
            gap_ns = int(self._gaps_s[self._index] / self._speed * _NS)
            # Schedule from when it was due, not from now, so the pace does not drift; but
            # a reader that fell far behind does not get a burst of stale epochs.
            self._due_ns = max(self._due_ns + gap_ns, now + gap_ns - _NS)
        elif self._speed > 0:
            self._due_ns = now + _NS
        fix = replace(template, mono_ns=now)
        if self._laps and fix.time_utc is not None:
            first, last = self._epochs[0].time_utc, self._epochs[-1].time_utc
            lap = (last - first + timedelta(seconds=1)) if first and last else timedelta(0)
            fix = replace(fix, time_utc=fix.time_utc + lap * self._laps)
        return fix

    def stats(self) -> SourceStats:
        ended = self._index >= len(self._epochs) and not self._loop
        return _stats_from(
            self.name,
            self._counters,
            connected=not ended,
            error="replay finished" if ended else None,
            ended=ended,
        )

    def close(self) -> None:
        self._index = len(self._epochs)
        self._loop = False


def _replay_gap_s(a: Fix, b: Fix, max_wait_s: float) -> float:
    if a.time_utc is None or b.time_utc is None:
        return 1.0
    gap = (b.time_utc - a.time_utc).total_seconds()
    return gap if 0 < gap <= max_wait_s else 1.0


class SerialNmeaSource:
    """An NMEA receiver on a serial port (USB adapters, UARTs; pyserial)."""

    def __init__(
        self,
        port: str,
        baud: int = 9600,
        *,
        chunk_timeout_s: float = 0.1,
        idle_flush_s: float = 0.3,
        silence_reopen_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        clock: Clock = time.monotonic_ns,
    ) -> None:
        self._port_name = port
        self._baud = baud
        self._chunk_timeout_s = chunk_timeout_s
        self._idle_ns = int(idle_flush_s * _NS)
        self._silence_ns = int(silence_reopen_s * _NS)
        self._backoff = Backoff(backoff_initial_s, backoff_max_s, jitter=False)
        self._clock = clock
        self._decoder = NmeaStreamDecoder()
        self._ready: deque[Fix] = deque()
        self._port: serial.Serial | None = None
        self._last_data_ns = 0
        self._ever_opened = False
        self._reconnects = 0
        self._error: str | None = None

    @property
    def name(self) -> str:
        return f"serial:{self._port_name}@{self._baud}"

    def read(self, timeout_s: float) -> Fix | None:
        def receive(remaining_s: float) -> None:
            assert self._port is not None
            self._read_chunk(port=self._port, remaining_s=remaining_s)

        return read_reconnecting(
            self._ready,
            self._clock,
            self._backoff,
            timeout_s,
            connected=lambda: self._port is not None,
            connect=self._open,
            receive=receive,
        )

    def _open(self, now: int) -> None:
        try:
            self._port = serial.Serial(self._port_name, self._baud, timeout=self._chunk_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._error = f"cannot open {self._port_name}: {exc}"
            self._backoff.failed(now)
            return
        if self._ever_opened:
            self._reconnects += 1
        self._ever_opened = True
        self._last_data_ns = now

    def _read_chunk(self, port: serial.Serial, remaining_s: float) -> None:
        try:
            port.timeout = max(0.0, min(self._chunk_timeout_s, remaining_s))
            data = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._lost(f"{self._port_name} lost: {exc}")
            return
        now = self._clock()
        if data:
            self._last_data_ns = now
            self._error = None
            self._backoff.succeeded()
            self._ready.extend(self._decoder.feed(data, now))
            return
        self._ready.extend(self._decoder.flush_if_idle(now, self._idle_ns))
        if now - self._last_data_ns >= self._silence_ns:
            silent_s = (now - self._last_data_ns) / _NS
            self._lost(f"no data from {self._port_name} for {silent_s:.0f} s")

    def _lost(self, why: str) -> None:
        self._error = why
        self._ready.extend(self._decoder.interrupt())
        self._close_port()
        self._backoff.failed(self._clock())

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()  # a vanished device may fail to close: nothing left to release

    def stats(self) -> SourceStats:
        return _stats_from(
            self.name,
            self._decoder.counters(),
            connected=self._port is not None,
            reconnects=self._reconnects,
            error=self._error,
        )

    def close(self) -> None:
        self._close_port()
