"""The outbox database: its tables, opening it durably, and setting a corrupt one aside.

Only corruption (SQLITE_CORRUPT/SQLITE_NOTADB, or a failing quick_check of a readable file)
sets a database aside; a full disk or an I/O error never does (edge.outbox.diskspace): the
lock owner then makes room and tries once more, or reports the error with the file kept.
The database, its side files and the data directory are the service user's only (0600/0700):
findings carry positions and photos of the public road.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from edge.outbox import receipts
from edge.outbox.diskspace import is_corruption, is_disk_full, make_room_to_open, wal_pages_for

log = logging.getLogger(__name__)

DB_NAME = "outbox.sqlite3"
IMAGES_DIR = "images"
LOCK_NAME = "outbox.lock"
SCHEMA_VERSION = 2  # 2: the office's receipts (edge.outbox.receipts)

# image_state: 'none' (no picture), 'pending' (on disk, not yet sent), 'sent' (acknowledged by
# the broker, kept until room is needed; at the office once image_receipted_at is set),
# 'evicted' (deleted for room), 'missing' (vanished).
DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    id              TEXT PRIMARY KEY,
    grade           INTEGER NOT NULL,
    captured_at_utc TEXT NOT NULL,   -- ISO-8601 with microseconds and Z: sorts as time
    payload         TEXT NOT NULL,   -- the finding's JSON (edge.wire.serialize)
    payload_bytes   INTEGER NOT NULL,
    stored_at       REAL NOT NULL,   -- Unix seconds when committed here
    sent_at         REAL,            -- Unix seconds when the broker acknowledged; NULL: pending
    image_name      TEXT,            -- file name under images/
    image_bytes     INTEGER NOT NULL DEFAULT 0,
    image_state     TEXT NOT NULL DEFAULT 'none',
    image_sent_at   REAL,
    -- Schema version 2 (edge.outbox.receipts): the office's receipts.
    first_sent_at       REAL,
    receipted_at        REAL,        -- Unix seconds the office's receipt arrived; NULL: not yet
    image_first_sent_at REAL,
    image_receipted_at  REAL
);
-- The indexes carry the byte counts so that status queries never read the JSON payloads.
CREATE INDEX IF NOT EXISTS findings_unsent
    ON findings (grade DESC, captured_at_utc, id, payload_bytes, sent_at) WHERE sent_at IS NULL;
-- The images the publisher sends next (queries.unsent_image_rows), in its order and covering
-- its columns. image_state leads although the WHERE fixes it: without that equality term
-- SQLite prefers findings_images_by_age, reads every pending image and sorts them each call.
DROP INDEX IF EXISTS findings_unsent_images;
CREATE INDEX IF NOT EXISTS findings_images_to_send
    ON findings (image_state, grade DESC, captured_at_utc, id, image_name, image_bytes, sent_at)
    WHERE sent_at IS NOT NULL AND image_state = 'pending';
CREATE INDEX IF NOT EXISTS findings_images_by_age
    ON findings (image_state, grade, captured_at_utc, image_bytes);
CREATE INDEX IF NOT EXISTS findings_by_grade ON findings (grade, sent_at);
-- Retention finds what the office has had for long by these (edge.outbox.retention).
CREATE INDEX IF NOT EXISTS findings_sent ON findings (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS track (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc    TEXT,
    lat_deg     REAL NOT NULL,
    lon_deg     REAL NOT NULL,
    speed_mps   REAL,
    track_deg   REAL,
    hdop        REAL,
    fix_mode    INTEGER NOT NULL,
    stored_at   REAL NOT NULL,
    sent_at     REAL
);
CREATE INDEX IF NOT EXISTS track_unsent ON track (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS track_sent ON track (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(Exception):
    """The outbox cannot be used; the message names the file and the reason."""


class DataDirLock:
    """An advisory lock marking the one process that may tidy the data directory.

    Whoever holds it may set a corrupt database aside and delete orphan images; others (a
    `sync drain` beside the recorder) use the outbox but leave housekeeping alone. The kernel
    drops the lock when the process dies, even on kill -9.
    """

    def __init__(self, data_dir: Path) -> None:
        fd = os.open(data_dir / LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: IO[bytes] | None = os.fdopen(fd, "ab")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.owner = True
        except BlockingIOError:
            self.owner = False

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def connect(path: Path, *, busy_timeout_s: float, wal_pages: int = 1000) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    # Lets retention hand freed pages back to the file system in small steps (never a full
    # VACUUM). It only takes effect on a new, empty database, and only before WAL is set;
    # on an older database it changes nothing, and freed pages are simply reused.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit that returned survives a power cut, not just a crash.
    conn.execute("PRAGMA synchronous=FULL")
    # On a small disk a checkpoint comes sooner, and the WAL is cut back after it.
    conn.execute(f"PRAGMA wal_autocheckpoint={wal_pages:d}")
    conn.execute(f"PRAGMA journal_size_limit={wal_pages * 4096:d}")
    return conn


def connect_read_only(path: Path, *, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, check_same_thread=False)


def check_integrity(path: Path) -> str | None:
    """None when SQLite's quick_check passes; otherwise what is wrong with the file. Errors
    that say nothing about the file (a full disk, an I/O error, a lock) are raised."""
    try:
        conn = sqlite3.connect(path, timeout=5.0)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        return str(exc)
    problems = [str(r[0]) for r in rows]
    if problems == ["ok"]:
        return None
    return "; ".join(problems[:5])[:500]


def set_aside(data_dir: Path, reason: str) -> Path:
    """Move a corrupt database (with its WAL and images) aside; returns the moved file's path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = f"corrupt-{stamp}"
    n = 1
    while (data_dir / f"{DB_NAME}.{tag}").exists():
        tag = f"corrupt-{stamp}-{n}"
        n += 1
    db = data_dir / DB_NAME
    moved = data_dir / f"{DB_NAME}.{tag}"
    # The WAL and shared-memory files keep their suffix, so that SQLite still pairs them
    # with the moved database when a technician tries to salvage it.
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            os.replace(side, moved.with_name(moved.name + suffix))
    os.replace(db, moved)
    images = data_dir / IMAGES_DIR
    images_moved = data_dir / f"{IMAGES_DIR}.{tag}"
    if images.is_dir():
        # Their rows are in the damaged file: keep them beside it rather than treat them as
        # orphans of the new database and delete them.
        os.replace(images, images_moved)
    log.warning(
        "outbox database %s is corrupt (%s): moved it aside to %s and started a new one; "
        "its images are in %s",
        db,
        reason,
        moved,
        images_moved,
    )
    return moved


def create_schema(conn: sqlite3.Connection, db_path: Path) -> None:
    """Create the tables if needed; refuse a database written by a newer schema."""
    conn.executescript(DDL)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise OutboxError(
            f"{db_path}: schema version {row[0]} is newer than this software "
            f"understands ({SCHEMA_VERSION}); update roadpatrol"
        )
    if receipts.migrate(conn):
        log.info("outbox %s: added the office's receipts (schema version 2)", db_path)
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


@dataclass(frozen=True, slots=True)
class Opened:
    """What opening found: where a corrupt database went (None: it was sound), and the image
    files deleted because a full disk left no room to open it (their rows to mark evicted)."""

    moved_to: Path | None = None
    evicted_before_open: list[str] = field(default_factory=list)


def private(path: Path, mode: int = 0o600) -> None:
    """Narrow a file's (or folder's) permissions to the service user: an older outbox was
    created world-readable."""
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError as exc:
        log.warning("outbox: cannot restrict the permissions of %s (%s)", path, exc)


def _open(
    data_dir: Path, opened: list[sqlite3.Connection], *, owner: bool, busy_timeout_s: float
) -> Path | None:
    db_path = data_dir / DB_NAME
    moved = None
    if owner and db_path.exists():
        problem = check_integrity(db_path)
        if problem is not None:
            moved = set_aside(data_dir, problem)
    images = data_dir / IMAGES_DIR
    images.mkdir(mode=0o700, exist_ok=True)
    if owner:
        private(data_dir, 0o700)
        private(images, 0o700)
        # Created here, 0600, so that SQLite's -wal and -shm (which copy the database's
        # permissions) are private too.
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT, 0o600))
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            if (data_dir / name).exists():
                private(data_dir / name)
    wal_pages = wal_pages_for(data_dir)
    opened.append(connect(db_path, busy_timeout_s=busy_timeout_s, wal_pages=wal_pages))
    create_schema(opened[0], db_path)
    opened.append(connect(db_path, busy_timeout_s=busy_timeout_s, wal_pages=wal_pages))
    return moved


def open_database(
    data_dir: Path, opened: list[sqlite3.Connection], *, owner: bool, busy_timeout_s: float
) -> Opened:
    """Open the writer's and the reader's connections (appended to ``opened``, so that the
    caller can close them if this fails halfway), creating the database and its image folder
    if needed. The lock ``owner`` first sets a corrupt database aside; when the disk is too
    full to open it, it makes room (edge.outbox.diskspace) and tries once more.
    """
    try:
        return Opened(_open(data_dir, opened, owner=owner, busy_timeout_s=busy_timeout_s))
    except (sqlite3.Error, OSError) as exc:
        if not owner or not is_disk_full(exc, data_dir):
            raise
        log.warning("outbox: %s: cannot open it, the disk is full (%s)", data_dir / DB_NAME, exc)
    for conn in opened:
        conn.close()
    opened.clear()
    evicted = make_room_to_open(data_dir, data_dir / DB_NAME, data_dir / IMAGES_DIR)
    moved = _open(data_dir, opened, owner=owner, busy_timeout_s=busy_timeout_s)
    return Opened(moved, evicted)
