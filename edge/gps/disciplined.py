"""UTC for frames from the GPS receiver's time, carried by the monotonic clock.

A vehicle computer often boots without RTC or network, with its system clock in 2001; the
receiver knows the true time within a minute of power. So once a fix carries a plausible
UTC, every frame is stamped ``fix.time_utc + (frame.mono_ns - fix.mono_ns)``: the offset from
the receiver's UTC to the monotonic clock, which neither jumps when NTP or a person sets the
system clock nor stops when the GPS is lost (its drift is parts per million). Before that the
system clock stamps frames, marked ``system`` when its date is plausible and ``unset`` when
not; "clock not set" on the screen means exactly that: no trustworthy UTC yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge.gps.history import FixHistory
from edge.types import ClockSource

log = logging.getLogger(__name__)

# A date before this is a clock that was never set (or a receiver that has no time yet).
PLAUSIBLE_FROM = datetime(2020, 1, 1, tzinfo=UTC)
_DISAGREE_WARN_S = 120.0  # system clock this far from GPS time: say so, once


class DisciplinedClock:
    """``at(mono_ns)`` → (UTC, which clock); thread-safe (capture, grading and status)."""

    def __init__(
        self,
        history: FixHistory,
        *,
        system_utc: Callable[[], datetime] = lambda: datetime.now(UTC),
        mono_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._history = history
        self._system_utc = system_utc
        self._mono_ns = mono_ns
        self._lock = threading.Lock()
        self._gps_epoch: tuple[datetime, int] | None = None  # (receiver UTC, mono_ns) pair
        self._warned = False

    def at(self, mono_ns: int) -> tuple[datetime, ClockSource]:
        epoch = self._refresh()
        if epoch is not None:
            utc, fix_mono = epoch
            return utc + timedelta(microseconds=(mono_ns - fix_mono) / 1000), ClockSource.GPS
        now = self._system_utc()
        utc = now - timedelta(microseconds=(self._mono_ns() - mono_ns) / 1000)
        return utc, (ClockSource.SYSTEM if now >= PLAUSIBLE_FROM else ClockSource.UNSET)

    def trusted(self) -> bool:
        """True once UTC is known: from the receiver, or a system clock with a plausible date."""
        return self._refresh() is not None or self._system_utc() >= PLAUSIBLE_FROM

    def _refresh(self) -> tuple[datetime, int] | None:
        fix = self._history.latest()
        with self._lock:
            if fix is not None and fix.time_utc is not None and fix.time_utc >= PLAUSIBLE_FROM:
                if self._gps_epoch is None:
                    self._say_how_far_off(fix.time_utc, fix.mono_ns)
                self._gps_epoch = (fix.time_utc, fix.mono_ns)
            return self._gps_epoch

    def _say_how_far_off(self, gps_utc: datetime, fix_mono: int) -> None:
        system_then = self._system_utc() - timedelta(
            microseconds=(self._mono_ns() - fix_mono) / 1000
        )
        off_s = (system_then - gps_utc).total_seconds()
        if abs(off_s) > _DISAGREE_WARN_S and not self._warned:
            self._warned = True
            log.warning(
                "system clock is %.0f s off the GPS time; frames are stamped with GPS time", off_s
            )
