"""Keeping the outbox within its disk budget, and the small transaction helpers it needs.

Every function here expects its caller to hold the Outbox's write lock.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.outbox.queries import EVICTED_BYTES, IMAGE_BYTES_ON_DISK, IMAGES_EVICTED

log = logging.getLogger(__name__)

_EVICT_BATCH = 256


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """IMMEDIATE: take SQLite's write lock now, not halfway through."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # also when COMMIT itself failed (disk full, I/O error)
            conn.execute("ROLLBACK")
        raise


def bump(conn: sqlite3.Connection, name: str, delta: int) -> None:
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (name, delta),
    )


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _choose_victims(conn: sqlite3.Connection, need: int) -> list[tuple[str, str, int]]:
    """Images the office has receipted first, then those only the broker acknowledged, then
    unsent ones; within each the lowest grade, then the oldest."""
    victims: list[tuple[str, str, int]] = []
    freed = 0
    for state, receipted in (("sent", 1), ("sent", 0), ("pending", 0)):
        cursor = conn.execute(
            "SELECT id, image_name, image_bytes FROM findings WHERE image_state = ? "
            "AND (image_receipted_at IS NOT NULL) = ? ORDER BY grade, captured_at_utc, id",
            (state, receipted),
        )
        try:
            for row in cursor:
                victims.append(row)
                freed += row[2]
                if freed >= need:
                    return victims
        finally:
            cursor.close()
    return victims


def enforce_limits(
    conn: sqlite3.Connection,
    images_dir: Path,
    cap_bytes: int,
    min_free_bytes: int,
    *,
    freeing_bytes: int = 0,
) -> list[tuple[str, int]]:
    """Evict images until they fit under the cap and the disk keeps its free-space floor.

    Only the rows change here (committed before this returns); the files are the caller's to
    delete, as (name, bytes), once it has released the write lock: unlinking hundreds of
    freshly written files takes most of a second, and writers must not wait for that. A
    crash in between leaves orphan files (deleted by edge.outbox.quarantine.tidy at the next
    open), never a row pointing at a file that is gone. ``freeing_bytes``: evicted earlier
    and still being deleted, so already as good as free.
    """
    (on_disk,) = conn.execute(
        "SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = ?", (IMAGE_BYTES_ON_DISK,)
    ).fetchone()
    free = disk_free_bytes(images_dir) + freeing_bytes
    need = max(on_disk - cap_bytes, min_free_bytes - free)
    if need <= 0:
        return []
    victims = _choose_victims(conn, need)
    for start in range(0, len(victims), _EVICT_BATCH):
        batch = victims[start : start + _EVICT_BATCH]
        size = sum(v[2] for v in batch)
        with transaction(conn):
            conn.executemany(
                "UPDATE findings SET image_state = 'evicted' WHERE id = ?",
                [(v[0],) for v in batch],
            )
            bump(conn, IMAGES_EVICTED, len(batch))
            bump(conn, EVICTED_BYTES, size)
            bump(conn, IMAGE_BYTES_ON_DISK, -size)
    if victims:
        log.warning(
            "outbox: evicting %d images (%d bytes) to stay under the image cap / free-space floor",
            len(victims),
            sum(v[2] for v in victims),
        )
    return [(name, size) for _, name, size in victims]
