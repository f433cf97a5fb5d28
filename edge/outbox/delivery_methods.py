"""The Outbox's methods for the broker's acknowledgements and the patrol track (their SQL:
edge.outbox.rows). A record acknowledged by the broker still awaits the office's receipt
(edge.outbox.receipt_methods)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable

from edge.outbox import rows
from edge.outbox.space import transaction
from edge.types import Fix


class OutboxDelivery:
    """Mixed into edge.outbox.store.Outbox, whose connections and locks these use."""

    _wlock: threading.Lock
    _wconn: sqlite3.Connection
    _clock: Callable[[], float]
    _writes: int

    def _maybe_prune(self) -> None:
        raise NotImplementedError

    def _mark(self, sql: str, ids: Iterable[str | int]) -> int:
        params = [(self._clock(), i) for i in ids]
        if not params:
            return 0
        with self._wlock, transaction(self._wconn) as conn:
            before = conn.total_changes
            conn.executemany(sql, params)
            self._writes += 1
            changed = conn.total_changes - before
        self._maybe_prune()
        return changed

    def mark_finding_sent(self, finding_id: str) -> bool:
        """The broker acknowledged this finding; False if it was unknown or already marked.
        It now awaits the office's receipt (:meth:`mark_receipted`)."""
        return self.mark_findings_sent([finding_id]) == 1

    def mark_findings_sent(self, finding_ids: Iterable[str]) -> int:
        """Mark several in one commit (one fsync); returns how many changed."""
        return self._mark(rows.MARK_FINDING_SENT, finding_ids)

    def mark_image_sent(self, finding_id: str) -> bool:
        """The broker acknowledged the image; the file stays until the cap needs room or
        retention deletes it with its record."""
        return self.mark_images_sent([finding_id]) == 1

    def mark_images_sent(self, finding_ids: Iterable[str]) -> int:
        return self._mark(rows.MARK_IMAGE_SENT, finding_ids)

    def add_track_point(self, fix: Fix) -> int | None:
        """Store a point of the patrol route; None (nothing stored) when the fix has no position."""
        if not fix.has_position:
            return None
        with self._wlock, transaction(self._wconn) as conn:
            point_id = rows.insert_track_point(conn, fix, stored_at=self._clock())
            self._writes += 1
            return point_id

    def mark_track_sent(self, point_ids: Iterable[int]) -> int:
        return self._mark(rows.MARK_TRACK_SENT, point_ids)
