"""The outbox: every finding on disk before anything else, until the office has it.

Layout of the data directory: ``outbox.sqlite3`` (WAL, synchronous=FULL), ``images/<id>.jpg``,
``outbox.lock``. A finding's image is written (fsync, atomic rename, fsync of the directory)
before its row commits, so a crash leaves at most an orphan image, never a row whose image is
missing. Orphans are deleted the next time the outbox is opened by the lock holder.

Images of findings the office has are kept after sending (the crew can still look at them,
and the office may ask again) until the cap or the free-space floor needs the room: then
sent images go first, then unsent ones, each lowest grade first, oldest first.

Thread-safe: one connection for writes and one for reads, each behind its own lock.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable
from pathlib import Path

from edge.outbox import queries
from edge.outbox.config import OutboxConfig
from edge.outbox.images import is_jpeg, with_exif, write_atomic
from edge.outbox.queries import (
    FRAMES_COUNTER,
    IMAGE_BYTES_ON_DISK,
    IMAGES_MISSING,
    OutboxSummary,
    PendingFinding,
    PendingImage,
    TrackPoint,
)
from edge.outbox.schema import (
    DB_NAME,
    IMAGES_DIR,
    DataDirLock,
    OutboxError,
    check_integrity,
    connect,
    create_schema,
    set_aside,
)
from edge.outbox.space import bump, disk_free_bytes, enforce_limits, tidy, transaction
from edge.serialize import finding_to_dict, format_utc
from edge.status import OutboxStatus
from edge.types import Finding, Fix

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")  # the id names the image file
_COUNTER_FLUSH_S = 5.0  # grade-0 frame counts are not worth an fsync per frame


class Outbox:
    """See the module docstring. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        image_cap_bytes: int,
        min_free_bytes: int,
        busy_timeout_s: float,
    ) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / DB_NAME
        self.images_dir = data_dir / IMAGES_DIR
        self.image_cap_bytes = image_cap_bytes
        self.min_free_bytes = min_free_bytes
        self.recovered_from: Path | None = None  # where a corrupt database was moved to
        try:
            self._lock_file = DataDirLock(data_dir)
        except OSError as exc:
            raise OutboxError(f"{data_dir}: cannot use the data directory: {exc}") from exc
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._frame_counts: dict[int, int] = {}
        self._last_flush = time.monotonic()
        self._writes = 0  # bumped by every change, so that stats() knows its cache is stale
        self._stats_cache: tuple[int, float, OutboxStatus] | None = None
        opened: list[sqlite3.Connection] = []
        try:
            if self._lock_file.owner and self.db_path.exists():
                problem = check_integrity(self.db_path)
                if problem is not None:
                    self.recovered_from = set_aside(data_dir, problem)
            self.images_dir.mkdir(exist_ok=True)
            self._wconn = connect(self.db_path, busy_timeout_s=busy_timeout_s)
            opened.append(self._wconn)
            create_schema(self._wconn, self.db_path)
            self._rconn = connect(self.db_path, busy_timeout_s=busy_timeout_s)
            opened.append(self._rconn)
            if self._lock_file.owner:
                with self._wlock:
                    tidy(self._wconn, self.images_dir)
                    enforce_limits(
                        self._wconn, self.images_dir, self.image_cap_bytes, self.min_free_bytes
                    )
        except BaseException as exc:
            for conn in opened:
                conn.close()
            self._lock_file.release()
            if isinstance(exc, sqlite3.DatabaseError | OSError):
                raise OutboxError(f"{self.db_path}: cannot open the outbox: {exc}") from exc
            raise

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        image_cap_bytes: int,
        min_free_bytes: int,
        busy_timeout_s: float = 5.0,
    ) -> Outbox:
        """Open (creating if needed) the outbox in ``data_dir``; raises OutboxError."""
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"{data_dir}: cannot create the data directory: {exc}") from exc
        return cls(
            data_dir,
            image_cap_bytes=image_cap_bytes,
            min_free_bytes=min_free_bytes,
            busy_timeout_s=busy_timeout_s,
        )

    @classmethod
    def from_config(cls, data_dir: Path, cfg: OutboxConfig) -> Outbox:
        return cls.open(
            data_dir, image_cap_bytes=cfg.image_cap_bytes, min_free_bytes=cfg.min_free_bytes
        )

    def close(self) -> None:
        with self._wlock:
            self._flush_counts()
            self._wconn.close()
        with self._rlock:
            self._rconn.close()
        self._lock_file.release()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def add(self, finding: Finding, jpeg: bytes | None) -> bool:
        """Store a finding (and its JPEG) durably. False when that id is already stored."""
        if not _SAFE_ID.match(finding.id):
            raise ValueError(f"finding id {finding.id!r} is not a UUID-like identifier")
        if jpeg is not None and not is_jpeg(jpeg):
            raise ValueError(f"finding {finding.id}: image bytes are not a JPEG")
        payload = json.dumps(finding_to_dict(finding), ensure_ascii=False, separators=(",", ":"))
        with self._wlock:
            exists = self._wconn.execute(
                "SELECT 1 FROM findings WHERE id = ?", (finding.id,)
            ).fetchone()
            if exists:
                return False
            image_name, image_bytes = None, 0
            if jpeg is not None:
                image_name, image_bytes = self._write_image(finding, jpeg)
            with transaction(self._wconn) as conn:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO findings (id, grade, captured_at_utc, payload, "
                    "payload_bytes, stored_at, image_name, image_bytes, image_state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        finding.id,
                        finding.grade,
                        format_utc(finding.captured_at_utc),
                        payload,
                        len(payload.encode()),
                        time.time(),
                        image_name,
                        image_bytes,
                        "none" if image_name is None else "pending",
                    ),
                ).rowcount
                if inserted and image_bytes:
                    bump(conn, IMAGE_BYTES_ON_DISK, image_bytes)
                if jpeg is not None and image_name is None:
                    bump(conn, IMAGES_MISSING, 1)
                written = self._write_counts(conn)
            self._counts_written(written)
            self._writes += 1
            enforce_limits(self._wconn, self.images_dir, self.image_cap_bytes, self.min_free_bytes)
            return bool(inserted)

    def replace_unsent(self, finding: Finding, jpeg: bytes | None) -> bool:
        """Update a stored finding that the broker has not acknowledged yet: a repeat sighting
        of the same damage (a better frame, or one more sighting). ``jpeg`` None keeps the
        image. False, changing nothing, when it is unknown or already sent: the office has it.
        """
        if jpeg is not None and not is_jpeg(jpeg):
            raise ValueError(f"finding {finding.id}: image bytes are not a JPEG")
        payload = json.dumps(finding_to_dict(finding), ensure_ascii=False, separators=(",", ":"))
        with self._wlock:
            row = self._wconn.execute(
                "SELECT image_name, image_bytes, image_state FROM findings "
                "WHERE id = ? AND sent_at IS NULL",
                (finding.id,),
            ).fetchone()
            if row is None:
                return False
            image_name, image_bytes, image_state = row
            if jpeg is not None:
                new_name, new_bytes = self._write_image(finding, jpeg)
                if new_name is not None:
                    image_name, image_bytes, image_state = new_name, new_bytes, "pending"
            old_bytes = row[1] if row[0] is not None and row[2] == "pending" else 0
            with transaction(self._wconn) as conn:
                conn.execute(
                    "UPDATE findings SET grade = ?, captured_at_utc = ?, payload = ?, "
                    "payload_bytes = ?, image_name = ?, image_bytes = ?, image_state = ? "
                    "WHERE id = ?",
                    (
                        finding.grade,
                        format_utc(finding.captured_at_utc),
                        payload,
                        len(payload.encode()),
                        image_name,
                        image_bytes,
                        image_state,
                        finding.id,
                    ),
                )
                if image_state == "pending" and image_bytes != old_bytes:
                    bump(conn, IMAGE_BYTES_ON_DISK, image_bytes - old_bytes)
            self._writes += 1
            return True

    def _write_image(self, finding: Finding, jpeg: bytes) -> tuple[str | None, int]:
        """Write the image; on a disk error keep the record without it (records matter most)."""
        data = with_exif(jpeg, finding)
        name = f"{finding.id}.jpg"
        try:
            write_atomic(self.images_dir / name, data)
        except OSError as exc:
            log.error(
                "finding %s: cannot write its image to %s (%s); storing the record without it",
                finding.id,
                self.images_dir,
                exc,
            )
            return None, 0
        return name, len(data)

    def count_frame(self, grade: int) -> None:
        """Count a graded frame (grade-0 frames are only counted, never stored).

        Counts reach the database with the next finding or within a few seconds, so a crash
        may lose the last seconds of counts, never a finding.
        """
        with self._wlock:
            self._frame_counts[grade] = self._frame_counts.get(grade, 0) + 1
            if time.monotonic() - self._last_flush >= _COUNTER_FLUSH_S:
                self._flush_counts()

    def _write_counts(self, conn: sqlite3.Connection) -> dict[int, int]:
        """Add the frame counts to the open transaction; returns what it added."""
        written = dict(self._frame_counts)
        for grade, n in written.items():
            bump(conn, FRAMES_COUNTER.format(grade=grade), n)
        return written

    def _counts_written(self, written: dict[int, int]) -> None:
        """The transaction with ``written`` committed: forget those counts."""
        for grade, n in written.items():
            left = self._frame_counts.get(grade, 0) - n
            if left:
                self._frame_counts[grade] = left
            else:
                self._frame_counts.pop(grade, None)
        self._last_flush = time.monotonic()

    def _flush_counts(self) -> None:
        if self._frame_counts:
            with transaction(self._wconn) as conn:
                written = self._write_counts(conn)
            self._counts_written(written)

    def _mark(self, sql: str, ids: Iterable[str | int]) -> int:
        params = [(time.time(), i) for i in ids]
        if not params:
            return 0
        with self._wlock, transaction(self._wconn) as conn:
            before = conn.total_changes
            conn.executemany(sql, params)
            self._writes += 1
            return conn.total_changes - before

    def mark_finding_sent(self, finding_id: str) -> bool:
        """The broker acknowledged this finding; False if it was unknown or already marked."""
        return self.mark_findings_sent([finding_id]) == 1

    def mark_findings_sent(self, finding_ids: Iterable[str]) -> int:
        """Mark several in one commit (one fsync); returns how many changed."""
        return self._mark(
            "UPDATE findings SET sent_at = ? WHERE id = ? AND sent_at IS NULL", finding_ids
        )

    def mark_image_sent(self, finding_id: str) -> bool:
        """The broker acknowledged the image; the file stays until the cap needs room."""
        return self.mark_images_sent([finding_id]) == 1

    def mark_images_sent(self, finding_ids: Iterable[str]) -> int:
        return self._mark(
            "UPDATE findings SET image_state = 'sent', image_sent_at = ? "
            "WHERE id = ? AND image_state = 'pending'",
            finding_ids,
        )

    def add_track_point(self, fix: Fix) -> int | None:
        """Store a point of the patrol route; None (nothing stored) when the fix has no position."""
        if not fix.has_position:
            return None
        with self._wlock, transaction(self._wconn) as conn:
            cur = conn.execute(
                "INSERT INTO track (time_utc, lat_deg, lon_deg, speed_mps, track_deg, hdop, "
                "fix_mode, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    None if fix.time_utc is None else format_utc(fix.time_utc),
                    fix.lat_deg,
                    fix.lon_deg,
                    fix.speed_mps,
                    fix.track_deg,
                    fix.hdop,
                    int(fix.mode),
                    time.time(),
                ),
            )
            self._writes += 1
            return cur.lastrowid

    def mark_track_sent(self, point_ids: Iterable[int]) -> int:
        return self._mark(
            "UPDATE track SET sent_at = ? WHERE id = ? AND sent_at IS NULL", point_ids
        )

    # --- disk limits -----------------------------------------------------------------------

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
                rows = queries.unsent_image_rows(self._rconn, limit - len(found), skip)
            if not rows:
                break
            for fid, name, size, grade in rows:
                skip.add(fid)
                path = self.images_dir / name
                if path.is_file():
                    found.append(PendingImage(fid, path, size, grade))
                else:
                    missing.append(fid)
        if missing:
            self._mark_missing(missing)
        return found

    def _mark_missing(self, finding_ids: list[str]) -> None:
        log.warning(
            "outbox: %d unsent images vanished from disk: %s",
            len(finding_ids),
            ", ".join(finding_ids[:5]),
        )
        with self._wlock, transaction(self._wconn) as conn:
            for fid in finding_ids:
                row = conn.execute(
                    "UPDATE findings SET image_state = 'missing' "
                    "WHERE id = ? AND image_state = 'pending' RETURNING image_bytes",
                    (fid,),
                ).fetchone()
                if row is not None:
                    bump(conn, IMAGES_MISSING, 1)
                    bump(conn, IMAGE_BYTES_ON_DISK, -row[0])
            self._writes += 1

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
            disk_low=free < self.min_free_bytes,
        )
        self._stats_cache = (writes, now, status)
        return status


__all__ = ["Outbox", "OutboxError"]
