"""The read side of the Outbox (a base class of it; edge.outbox.store is the whole story).

Reads go through their own connection behind their own lock, so that a long status query
never waits for a writer's fsync, nor a writer for it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from edge.outbox import queries, rows
from edge.outbox.diskspace import DiskGuard
from edge.outbox.queries import OutboxSummary, PendingFinding, PendingImage, TrackPoint
from edge.outbox.space import disk_free_bytes, transaction
from edge.status import OutboxStatus


class OutboxReads:
    """Set up by Outbox.__init__."""

    images_dir: Path
    _rconn: sqlite3.Connection
    _rlock: threading.Lock
    _wconn: sqlite3.Connection
    _wlock: threading.Lock
    _writes: int
    _stats_cache: tuple[int, float, OutboxStatus] | None
    _disk: DiskGuard
    _monotonic: Callable[[], float]

    def disk_free_bytes(self) -> int:
        return disk_free_bytes(self.images_dir)

    # --- reading ---------------------------------------------------------------------------

    def pending_findings(self, limit: int, exclude: Collection[str] = ()) -> list[PendingFinding]:
        """Unacknowledged findings: grade 3 first, then by grade descending, oldest first."""
        with self._rlock:
            return queries.pending_findings(self._rconn, limit, exclude)

    def pending_images(self, limit: int, exclude: Collection[str] = ()) -> list[PendingImage]:
        """Unsent images, still on disk, of findings the office already has; same order."""
        found: list[PendingImage] = []
        missing: list[str] = []
        skip = set(exclude)
        while len(found) < limit:
            with self._rlock:
                batch = queries.unsent_image_rows(self._rconn, limit - len(found), skip)
            if not batch:
                break
            for fid, name, size, grade in batch:
                skip.add(fid)
                path = self.images_dir / name
                if path.is_file():
                    found.append(PendingImage(fid, path, size, grade))
                else:
                    missing.append(fid)
        if missing:
            with self._wlock, transaction(self._wconn) as conn:
                rows.mark_images_missing(conn, missing)
                self._writes += 1
        return found

    def pending_track(self, limit: int) -> list[TrackPoint]:
        with self._rlock:
            return queries.pending_track(self._rconn, limit)

    def summary(self) -> OutboxSummary:
        with self._rlock:
            return queries.summary(self._rconn)

    def stats(self, max_age_s: float = 1.0) -> OutboxStatus:
        """The status-line figures. With a long backlog the queries take tens of ms, so a
        result up to ``max_age_s`` old is reused unless this Outbox has written since."""
        cached = self._stats_cache
        now = time.monotonic()
        if cached is not None and cached[0] == self._writes and now - cached[1] < max_age_s:
            return cached[2]
        writes = self._writes
        s = self.summary()
        free = self.disk_free_bytes()
        status = OutboxStatus(
            pending=s.pending,
            pending_bytes=s.pending_bytes,
            oldest_age_s=s.oldest_age_s,
            evictions=s.evictions,
            stored=s.stored,
            disk_free_bytes=free,
            disk_low=self._disk.disk_low(free, self._monotonic()),
            evicting=self._disk.evicting(self._monotonic()),
            pruned=s.pruned_findings,
            awaiting_receipt=s.awaiting_receipt + s.awaiting_receipt_images,
            awaiting_receipt_age_s=s.awaiting_receipt_age_s,
            office_silent_s=s.office_silent_s,
        )
        self._stats_cache = (writes, now, status)
        return status
