"""The GPS reader thread: source → FixHistory, plus a status snapshot for the screen."""

from __future__ import annotations

import logging
import re
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
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source = source
        self._history = history
        self._on_fix = on_fix
        self._read_timeout_s = read_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._logged_error: str | None = None  # the source's error as last written to the log
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
                # A source bug must not end GPS for the rest of the shift: report (once for
                # as long as it keeps failing the same way), retry.
                crash = f"{type(exc).__name__}: {exc}"
                if _state_of(crash) != _state_of(self._crash):
                    log.exception("GPS source %s failed", self._source.name)
                with self._lock:
                    self._crash = crash
                self._stop.wait(1.0)
                continue
            self._log_state_change()
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

    def _log_state_change(self) -> None:
        """The source's error into the log once each time it changes, not at every retry:
        a port that cannot be opened is retried for hours and must not fill the journal."""
        error = self._source.stats().error
        if _state_of(error) == _state_of(self._logged_error):
            return
        if error is not None:
            log.warning("GPS %s: %s", self._source.name, error)
        else:
            log.info("GPS %s: receiving again (was: %s)", self._source.name, self._logged_error)
        self._logged_error = error

    def stats(self) -> SourceStats:
        return self._source.stats()

    def _clock_known(self, latest: Fix | None) -> bool:
        """UTC is known from the receiver, or from the system clock (NTP, a real-time clock)
        when the receiver has given none yet; only when neither is plausible is it unknown."""
        receiver_utc = latest.time_utc if latest is not None else None
        if receiver_utc is not None and receiver_utc >= _CLOCK_PLAUSIBLE_FROM:
            return True
        return self._wall_clock() >= _CLOCK_PLAUSIBLE_FROM

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
            clock_set=self._clock_known(latest),
            error=error,
        )


def _state_of(error: str | None) -> str | None:
    """An error without its figures: "no data for 5 s" and "for 6 s" are one state."""
    return None if error is None else re.sub(r"\d+(\.\d+)?", "#", error)
