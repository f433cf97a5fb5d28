"""The Outbox's methods for the office's receipts (their SQL: edge.outbox.receipts)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable

from edge.outbox.receipts import Awaiting, apply, awaiting, requeue
from edge.outbox.space import transaction


class OutboxReceipts:
    """Mixed into edge.outbox.store.Outbox, whose connections and locks these use."""

    _wlock: threading.Lock
    _rlock: threading.Lock
    _wconn: sqlite3.Connection
    _rconn: sqlite3.Connection
    _clock: Callable[[], float]
    _writes: int

    def _maybe_prune(self) -> None:
        raise NotImplementedError

    def mark_receipted(
        self, finding_ids: Iterable[str], image_ids: Iterable[str] = ()
    ) -> tuple[int, int]:
        """The office has these findings / images in its database: their delivery ends (one
        commit). Ids unknown here or receipted before change nothing. Returns what changed."""
        findings, images = list(finding_ids), list(image_ids)
        with self._wlock, transaction(self._wconn) as conn:
            changed = apply(conn, self._clock(), findings, images)
            self._writes += 1
        self._maybe_prune()
        return changed

    def requeue_unreceipted(self, timeout_s: float, cap_s: float) -> tuple[int, int]:
        """Back to pending, to be sent again, what the office has not receipted in its wait
        (``timeout_s``, doubling per try up to ``cap_s``); returns (findings, images)."""
        with self._wlock, transaction(self._wconn) as conn:
            requeued = requeue(conn, self._clock(), timeout_s, cap_s)
            if any(requeued):
                self._writes += 1
        return requeued

    def awaiting_receipt(self) -> Awaiting:
        with self._rlock:
            return awaiting(self._rconn)
