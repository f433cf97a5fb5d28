"""Retention: forgetting what the office has had for a while, so the outbox stops growing.

A vehicle records for years; without this every finding, image and track point it ever sent
would stay on its disk. What goes, once it is older than ``keep_sent_s`` (by the time the
office's receipt arrived, on the Outbox's clock; see edge.outbox.receipts):

- a finding the office has receipted (``receipted_at`` set) together with its image file,
  unless that image is still waiting to be sent (``image_state = 'pending'``) or only the
  broker acknowledged it (``image_state = 'sent'``, no receipt): then the row stays, because it
  is what the publisher sends the image from. A sent image ages from its own receipt;
- a track point the broker has acknowledged (track batches get no receipt: the office keys
  them by time and place, and a lost one costs a line on a map, not a finding).

A finding not yet receipted stays at any age, whatever its image's state (an image receipted
before its finding does not make the finding prunable). Images that are only evicted or
missing leave nothing on disk to wait for.

Short transactions: a batch of rows is deleted per commit, the write lock is held for that
commit only (so a writer waits at most one small transaction), and a pass stops after a time
budget and says so, so that the rest can follow soon. Rows are deleted and committed first,
their files unlinked second, outside the lock (an unlink of a freshly written file can take
milliseconds): a kill -9 in between leaves orphan files (the next open of the lock holder
deletes them), never a row pointing at a file that is gone. Finding ids never come back
(UUIDv7), so no new row can claim a file between the commit and its unlink; were one re-added
anyway, the store would find its image missing and say so, and still send the record.

Each pruned record is counted in the counters table, cumulatively, for ``outbox status``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.outbox.queries import (
    IMAGE_BYTES_ON_DISK,
    PRUNED_FINDINGS,
    PRUNED_IMAGE_BYTES,
    PRUNED_IMAGES,
    PRUNED_TRACK_POINTS,
)
from edge.outbox.space import bump, transaction

log = logging.getLogger(__name__)

BATCH = 100  # rows per commit: a few milliseconds of write lock, even on a slow SD card
PASS_BUDGET_S = 0.25  # then the pass stops, so the caller's thread is not held for long
EVERY_S = 600.0  # a pass at most this often …
AGAIN_S = 2.0  # … or this soon when the last one ran out of time with more to do
_RECLAIM_MIN_FREE_PAGES = 1024  # give pages back to the file system only past ~4 MiB free
_RECLAIM_PAGES = 2048  # and at most ~8 MiB per pass

# The findings a pass may delete; :cutoff is Unix seconds. Both the finding and a sent image
# count from the office's receipt; an image still pending, or sent without a receipt, keeps
# its row.
_PRUNABLE_FINDINGS = """
SELECT id FROM findings
WHERE receipted_at IS NOT NULL AND receipted_at <= :cutoff
  AND image_state <> 'pending'
  AND (image_state <> 'sent' OR image_receipted_at <= :cutoff)
LIMIT :batch
"""


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass deleted; ``done`` False when it stopped on its time budget."""

    findings: int = 0
    images: int = 0
    image_bytes: int = 0
    track_points: int = 0
    done: bool = True

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.findings + other.findings,
            self.images + other.images,
            self.image_bytes + other.image_bytes,
            self.track_points + other.track_points,
            self.done and other.done,
        )

    @property
    def anything(self) -> bool:
        return bool(self.findings or self.track_points)


def delete_findings_batch(
    conn: sqlite3.Connection, cutoff: float, batch: int = BATCH
) -> tuple[Pruned, list[str]]:
    """Delete up to ``batch`` prunable findings in one transaction; returns what went and the
    names of their image files, for the caller to unlink once the lock is released. The caller
    holds the Outbox's write lock."""
    with transaction(conn):
        rows = conn.execute(
            f"DELETE FROM findings WHERE id IN ({_PRUNABLE_FINDINGS}) "
            "RETURNING grade, image_name, image_bytes, image_state",
            {"cutoff": cutoff, "batch": batch},
        ).fetchall()
        by_grade: dict[int, int] = {}
        files = [(name, size) for _, name, size, state in rows if state == "sent" and name]
        for grade, *_ in rows:
            by_grade[grade] = by_grade.get(grade, 0) + 1
        for grade, n in by_grade.items():
            bump(conn, PRUNED_FINDINGS.format(grade=grade), n)
        image_bytes = sum(size for _, size in files)
        if files:
            bump(conn, PRUNED_IMAGES, len(files))
            bump(conn, PRUNED_IMAGE_BYTES, image_bytes)
            bump(conn, IMAGE_BYTES_ON_DISK, -image_bytes)
    pruned = Pruned(findings=len(rows), images=len(files), image_bytes=image_bytes)
    return pruned, [name for name, _ in files]


def unlink_images(images_dir: Path, names: list[str]) -> None:
    for name in names:
        (images_dir / name).unlink(missing_ok=True)


def prune_track_batch(conn: sqlite3.Connection, cutoff: float, batch: int = BATCH) -> Pruned:
    """Delete up to ``batch`` sent track points older than ``cutoff`` in one transaction."""
    with transaction(conn):
        deleted = conn.execute(
            "DELETE FROM track WHERE id IN (SELECT id FROM track "
            "WHERE sent_at IS NOT NULL AND sent_at <= ? LIMIT ?)",
            (cutoff, batch),
        ).rowcount
        if deleted:
            bump(conn, PRUNED_TRACK_POINTS, deleted)
    return Pruned(track_points=deleted)


def reclaim(conn: sqlite3.Connection) -> int:
    """Give some freed pages back to the file system when the database allows it in small
    steps (auto_vacuum=INCREMENTAL, set on new databases); never a full VACUUM, which would
    rewrite the whole file while writers wait. Returns the pages given back."""
    (mode,) = conn.execute("PRAGMA auto_vacuum").fetchone()
    if mode != 2:
        return 0  # an older database: its free pages are reused by new rows instead
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    if free < _RECLAIM_MIN_FREE_PAGES:
        return 0
    # executescript, not execute: Python's execute() steps this pragma once (one page).
    conn.executescript(f"PRAGMA incremental_vacuum({_RECLAIM_PAGES:d})")
    (left,) = conn.execute("PRAGMA freelist_count").fetchone()
    return int(free) - int(left)


class Retention:
    """When to prune, and one pass of it; owned by an Outbox.

    ``clock`` is wall time (Unix seconds, what ``sent_at`` holds); ``monotonic`` paces the
    passes and their budget. Both are injectable so that tests need not sleep.
    """

    def __init__(
        self,
        keep_sent_s: float,
        *,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        every_s: float = EVERY_S,
        budget_s: float = PASS_BUDGET_S,
        batch: int = BATCH,
    ) -> None:
        if keep_sent_s < 0:
            raise ValueError(f"keep_sent_s must be 0 or more, not {keep_sent_s}")
        self.keep_sent_s = keep_sent_s
        self._clock = clock
        self._monotonic = monotonic
        self._every_s = every_s
        self._budget_s = budget_s
        self._batch = batch
        self._next_at: float | None = None  # None: due now
        self._running = threading.Lock()  # one pass at a time; a second caller skips

    def due(self) -> bool:
        return self._next_at is None or self._monotonic() >= self._next_at

    def run(self, lock: threading.Lock, conn: sqlite3.Connection, images_dir: Path) -> Pruned:
        """One pass: prune in batches, each under ``lock`` (the write lock), until nothing is
        left or the budget is spent. Returns what it deleted (zeroes if another pass runs)."""
        if not self._running.acquire(blocking=False):
            return Pruned()
        try:
            # Set first: a pass that fails (a busy or broken disk) is not retried at every call.
            self._next_at = self._monotonic() + self._every_s
            total = self._pass(lock, conn, images_dir)
        finally:
            self._running.release()
        if not total.done:
            self._next_at = self._monotonic() + min(AGAIN_S, self._every_s)
        if total.anything:
            log.info(
                "outbox: pruned %d sent findings (%d images, %d bytes) and %d track points "
                "older than %.1f days%s",
                total.findings,
                total.images,
                total.image_bytes,
                total.track_points,
                self.keep_sent_s / 86_400,
                "" if total.done else "; more next time",
            )
        return total

    def _pass(self, lock: threading.Lock, conn: sqlite3.Connection, images_dir: Path) -> Pruned:
        cutoff = self._clock() - self.keep_sent_s
        deadline = self._monotonic() + self._budget_s
        total = Pruned()
        steps: tuple[Callable[[], tuple[Pruned, list[str]]], ...] = (
            lambda: delete_findings_batch(conn, cutoff, self._batch),
            lambda: (prune_track_batch(conn, cutoff, self._batch), []),
        )
        for step in steps:
            while True:
                with lock:
                    got, files = step()
                unlink_images(images_dir, files)
                total += got
                if got.findings + got.track_points < self._batch:
                    break  # this kind is done
                if self._monotonic() >= deadline:
                    return total + Pruned(done=False)
        if total.anything:
            with lock:
                reclaim(conn)
        return total
