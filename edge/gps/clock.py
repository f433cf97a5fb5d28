"""The receiver's clock: time of day and partial dates into UTC, resolved like gpsd.

RMC carries a two-digit year (century from context), ZDA a full one, GGA only the time of
day (date carried over, with a midnight wrap). Dates before 2017 are impossible for a
receiver that knows 18 leap seconds and are moved forward 1024 weeks (GPS week rollover),
unless a replayed log declares with a ``# Date: YYYY-MM-DD`` comment that it is that old.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from edge.gps.nmea import TimeOfDay

GPS_ROLLOVER = timedelta(weeks=1024)
# The 18th leap second took effect here; a receiver date before it is a rollover victim.
_LEAP_18_SINCE = datetime(2017, 1, 1, tzinfo=UTC)
_HALF_DAY_US = 12 * 3600 * 1_000_000
_DATE_COMMENT = re.compile(r"Date:\s*(\d{4})-(\d{1,2})-(\d{1,2})")


class ReceiverClock:
    """Turns the receiver's time of day and partial dates into UTC, like gpsd."""

    def __init__(self) -> None:
        self.century = 2000
        self._date: date | None = None
        self._last_tod_us: int | None = None
        self._declared_date: date | None = None
        self._trust_old_dates = False

    @property
    def knows_date(self) -> bool:
        """A date came from the receiver (RMC, ZDA) or was already taken from the log."""
        return self._date is not None

    def note_comment(self, text: str) -> None:
        match = _DATE_COMMENT.search(text)
        if not match:
            return
        try:
            declared = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return
        self._declared_date = declared
        self.century = declared.year - declared.year % 100
        self._trust_old_dates = declared < _LEAP_18_SINCE.date()

    def set_two_digit_date(self, yy: int, month: int, day: int) -> None:
        if self._date is not None and self._date.year % 100 == 99 and yy == 0:
            self.century += 100
        year = self.century + yy
        if year >= 2080:  # gpsd: a two-digit year this far ahead is the previous century
            year -= 100
        self._set_date(year, month, day)

    def set_full_date(self, year: int, month: int, day: int) -> None:
        self.century = year - year % 100
        self._set_date(year, month, day)

    def _set_date(self, year: int, month: int, day: int) -> None:
        try:
            self._date = date(year, month, day)
        except ValueError:
            return  # 31 February: keep the last good date
        self._last_tod_us = None

    def resolve(self, tod: TimeOfDay) -> datetime | None:
        if self._date is None:
            if self._declared_date is None:
                return None
            self._date = self._declared_date
        if self._last_tod_us is not None and tod.micros < self._last_tod_us - _HALF_DAY_US:
            self._date += timedelta(days=1)  # midnight passed without a new date sentence
        self._last_tod_us = tod.micros
        stamp = datetime(self._date.year, self._date.month, self._date.day, tzinfo=UTC)
        stamp += timedelta(microseconds=tod.micros)
        if stamp < _LEAP_18_SINCE and not self._trust_old_dates:
            stamp += GPS_ROLLOVER
        return stamp
