"""Graded-frame counts: kept in memory and written with the next commit, not one fsync each.

Grade-0 frames are only counted, never stored, and the recorder grades many per second: a
commit (an fsync) per frame would cost more than the frame. The counts ride along with the next
finding's transaction, or are flushed on their own every few seconds, so a crash may lose the
last seconds of counts, never a finding. The caller holds the Outbox's write lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from edge.outbox.queries import FRAMES_COUNTER
from edge.outbox.space import bump

FLUSH_EVERY_S = 5.0


class FrameCounts:
    def __init__(
        self,
        flush_every_s: float = FLUSH_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counts: dict[int, int] = {}
        self._flush_every_s = flush_every_s
        self._monotonic = monotonic
        self._last_flush = monotonic()

    def __bool__(self) -> bool:
        return bool(self._counts)

    def add(self, grade: int) -> bool:
        """Count one frame; True when the counts are due to be flushed."""
        self._counts[grade] = self._counts.get(grade, 0) + 1
        return self._monotonic() - self._last_flush >= self._flush_every_s

    def write(self, conn: sqlite3.Connection) -> dict[int, int]:
        """Add the counts to the open transaction; returns what it added."""
        written = dict(self._counts)
        for grade, n in written.items():
            bump(conn, FRAMES_COUNTER.format(grade=grade), n)
        return written

    def postponed(self) -> None:
        """The commit failed (a full disk): keep the counts, try again in a flush period."""
        self._last_flush = self._monotonic()

    def written(self, written: dict[int, int]) -> None:
        """The transaction with ``written`` committed: forget those counts (not ones added
        since, should a caller have counted between write() and the commit)."""
        for grade, n in written.items():
            left = self._counts.get(grade, 0) - n
            if left:
                self._counts[grade] = left
            else:
                self._counts.pop(grade, None)
        self._last_flush = self._monotonic()
