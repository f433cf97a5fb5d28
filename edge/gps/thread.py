"""The GPS reader thread: source → FixHistory, plus a status snapshot for the screen."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.gps.history import FixHistory
from edge.gps.sources import EndOfFixes, FixSource, SourceStats
from edge.status import GpsStatus
from edge.types import Fix, FixMode

_NS = 1_000_000_000
# A receiver that reports a date before this has not got the time yet (or lost it).
_CLOCK_PLAUSIBLE_FROM = datetime(2020, 1, 1, tzinfo=UTC)

log = logging.getLogger(__name__)


class GpsThread:
    """Daemon thread reading fixes from ``source`` into ``history``.

    ``on_fix`` (optional) is called in this thread for every epoch, e.g. to record the patrol
    track; it must not block, and an exception in it is logged, not fatal.
    """

    def __init__(
        self,
        source: FixSource,
        history: FixHistory,
        *,
        on_fix: Callable[[Fix], None] | None = None,
        read_timeout_s: float = 0.25,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._source = source
        self._history = history
        self._on_fix = on_fix
        self._read_timeout_s = read_timeout_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gps", daemon=True)
        self._lock = threading.Lock()
        self._ended = False
        self._crash: str | None = None
        self.fixes_received = 0

    @property
    def source(self) -> FixSource:
        return self._source

    @property
    def ended(self) -> bool:
        """True once a replayed log has run out."""
        return self._ended

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._source.close()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fix = self._source.read(self._read_timeout_s)
            except EndOfFixes:
                self._ended = True
                return
            except Exception as exc:
                # A source bug must not end GPS for the rest of the shift: report, retry.
                log.exception("GPS source %s failed", self._source.name)
                with self._lock:
                    self._crash = f"{type(exc).__name__}: {exc}"
                self._stop.wait(1.0)
                continue
            if fix is None:
                continue
            with self._lock:
                self._crash = None
            self.fixes_received += 1
            self._history.add(fix)
            if self._on_fix is not None:
                try:
                    self._on_fix(fix)
                except Exception:
                    log.exception("on_fix callback failed")

    def stats(self) -> SourceStats:
        return self._source.stats()

    def status(self) -> GpsStatus:
        stats = self._source.stats()
        latest = self._history.latest()
        positioned = self._history.latest_with_position()
        with self._lock:
            error = self._crash or stats.error
        if self._ended and error is None:
            error = "replay finished"
        now = self._clock()
        return GpsStatus(
            mode=int(latest.mode) if latest is not None else int(FixMode.UNKNOWN),
            quality=str(latest.quality) if latest is not None else "none",
            sats_used=latest.sats_used if latest is not None else None,
            hdop=latest.hdop if latest is not None else None,
            speed_mps=positioned.speed_mps if positioned is not None else None,
            lat_deg=positioned.lat_deg if positioned is not None else None,
            lon_deg=positioned.lon_deg if positioned is not None else None,
            fix_age_s=(now - positioned.mono_ns) / _NS if positioned is not None else None,
            bad_sentences=stats.bad_sentences,
            clock_set=(
                latest is not None
                and latest.time_utc is not None
                and latest.time_utc >= _CLOCK_PLAUSIBLE_FROM
            ),
            error=error,
        )
