"""The outbox: every finding on disk before anything else, until the office has it.

Layout of the data directory: ``outbox.sqlite3`` (WAL, synchronous=FULL), ``images/<id>.jpg``,
``outbox.lock``. A finding's image is written (fsync, atomic rename, fsync of the directory)
before its row commits, so a crash leaves at most an orphan image, never a row whose image is
missing. Orphans are moved to ``quarantine/`` the next time the lock holder opens the outbox
(edge.outbox.quarantine): never deleted, their EXIF can rebuild the record.

A full disk never loses a record (edge.outbox.diskspace): a reserve file gives its room to
the records, images are evicted, and the write is tried once more. A corrupt database is set
aside and what can be read of it is salvaged into the new one at once (edge.outbox.recover).

Images of findings the office has are kept after sending (the crew can still look at them,
and the office may ask again) until the cap or the free-space floor needs the room: then
sent images go first, then unsent ones, each lowest grade first, oldest first. Their rows
are committed under the write lock, the files deleted after it is released
(edge.outbox.unlinking), so that a writer never waits for hundreds of unlinks.

A finding or image is delivered when the office's receipt arrives (edge.outbox.receipts),
not when the broker acknowledged it. Records the office receipted longer than ``keep_sent_s``
ago are deleted with their images (edge.outbox.retention): at open, then at most every few
minutes on the back of a mark_*_sent or receipt call, in short batches. Others never are.

Thread-safe: one connection for writes and one for reads, each behind its own lock.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.config.outbox import OutboxConfig
from edge.outbox import rows
from edge.outbox.delivery_methods import OutboxDelivery
from edge.outbox.diskspace import DiskGuard, is_disk_full
from edge.outbox.frame_counts import FrameCounts
from edge.outbox.images import is_jpeg, store_image
from edge.outbox.quarantine import opening_notes, tidy
from edge.outbox.queries import IMAGES_MISSING
from edge.outbox.reading import OutboxReads
from edge.outbox.receipt_methods import OutboxReceipts
from edge.outbox.recover import salvage_at_open
from edge.outbox.retention import Pruned, Retention
from edge.outbox.schema import DB_NAME, IMAGES_DIR, DataDirLock, OutboxError, open_database
from edge.outbox.space import bump, enforce_limits, transaction
from edge.outbox.unlinking import EvictedFiles, unlink_file
from edge.status import OutboxStatus
from edge.types import Finding

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")  # the id names the image file


class Outbox(OutboxReads, OutboxDelivery, OutboxReceipts):
    """See the module docstring. Open with :meth:`open`; close with :meth:`close`. Reading:
    :class:`edge.outbox.reading.OutboxReads`; the office's receipts:
    :class:`edge.outbox.receipt_methods.OutboxReceipts`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        image_cap_bytes: int,
        min_free_bytes: int,
        busy_timeout_s: float,
        keep_sent_s: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        unlink: Callable[[Path], None] = unlink_file,
    ) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / DB_NAME
        self.images_dir = data_dir / IMAGES_DIR
        self.image_cap_bytes = image_cap_bytes
        self._disk = DiskGuard(data_dir, min_free_bytes)
        self.min_free_bytes = self._disk.floor_bytes  # in force on this disk
        self.notes = self._disk.notes  # what the operator should read at start
        self._monotonic = monotonic
        self._clock = clock  # Unix seconds: stored_at, sent_at, and retention's cutoff
        self._frame_counts = FrameCounts(monotonic=monotonic)
        self._retention = (
            None
            if keep_sent_s is None
            else Retention(keep_sent_s, clock=clock, monotonic=monotonic)
        )
        self._wlock = threading.Lock()
        self._evicted = EvictedFiles(self.images_dir, unlink)
        self._rlock = threading.Lock()
        self._writes = 0  # bumped by every change, so that stats() knows its cache is stale
        self._stats_cache: tuple[int, float, OutboxStatus] | None = None
        try:
            self._lock_file = DataDirLock(data_dir)
        except OSError as exc:
            raise OutboxError(f"{data_dir}: cannot use the data directory: {exc}") from exc
        opened: list[sqlite3.Connection] = []
        try:
            found = open_database(
                data_dir, opened, owner=self._lock_file.owner, busy_timeout_s=busy_timeout_s
            )
            # recovered_from: where a corrupt database was moved to, if it was.
            self.recovered_from = found.moved_to
            self._wconn, self._rconn = opened
            if self._lock_file.owner:
                self._housekeep_at_open(found.evicted_before_open)
            self.prune_sent()
        except BaseException as exc:
            for conn in opened:
                conn.close()
            self._lock_file.release()
            if isinstance(exc, sqlite3.DatabaseError | OSError):
                full = " (the disk is full; the outbox was kept as it is)"
                raise OutboxError(
                    f"{self.db_path}: cannot open the outbox: {exc}"
                    + (full if is_disk_full(exc, data_dir) else "")
                ) from exc
            raise

    def _housekeep_at_open(self, evicted_before_open: list[str]) -> None:
        """The lock holder's tidy-up: orphans, limits, the reserve, and salvage of a
        database just set aside."""
        with self._wlock:
            quarantined = tidy(self._wconn, self.images_dir, evicted_before_open)
            evicted = self._evict()
        self._evicted.delete(evicted)
        for note in opening_notes(self.data_dir, len(evicted_before_open), quarantined):
            self._disk.note(note)
        if self.recovered_from is not None:
            self._disk.note(salvage_at_open(self.recovered_from, self.data_dir))

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        image_cap_bytes: int,
        min_free_bytes: int,
        busy_timeout_s: float = 5.0,
        keep_sent_s: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        unlink: Callable[[Path], None] = unlink_file,
    ) -> Outbox:
        """Open (creating if needed) the outbox in ``data_dir``; raises OutboxError.

        ``keep_sent_s``: delete what the office has had for longer (see the module
        docstring); None keeps everything (tools that open an outbox without its config).
        ``clock`` (Unix seconds), ``monotonic`` and ``unlink`` (how an evicted image file is
        deleted) are for tests.
        """
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
            keep_sent_s=keep_sent_s,
            clock=clock,
            monotonic=monotonic,
            unlink=unlink,
        )

    @classmethod
    def from_config(
        cls,
        data_dir: Path,
        cfg: OutboxConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Outbox:
        return cls.open(
            data_dir,
            image_cap_bytes=cfg.image_cap_bytes,
            min_free_bytes=cfg.min_free_bytes,
            keep_sent_s=cfg.keep_sent_s,
            clock=clock,
            monotonic=monotonic,
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
        payload = rows.payload_of(finding)
        with self._wlock:
            exists = self._wconn.execute(
                "SELECT 1 FROM findings WHERE id = ?", (finding.id,)
            ).fetchone()
            if exists:
                return False
            # An id is new here, so no evicted file of this name can still be waiting.
            image_name, image_bytes = None, 0
            if jpeg is not None:
                image_name, image_bytes = store_image(self.images_dir, finding, jpeg)

            def insert() -> bool:
                with transaction(self._wconn) as conn:
                    inserted = rows.insert_finding(
                        conn,
                        finding,
                        payload,
                        stored_at=self._clock(),
                        image_name=image_name,
                        image_bytes=image_bytes,
                    )
                    if jpeg is not None and image_name is None:
                        bump(conn, IMAGES_MISSING, 1)
                    written = self._frame_counts.write(conn)
                self._frame_counts.written(written)
                return inserted

            inserted = self._retry_when_full(insert)
            self._writes += 1
            evicted = self._evict()
        self._evicted.delete(evicted)
        return inserted

    def _retry_when_full(self, write: Callable[[], bool]) -> bool:
        """Run ``write``; if SQLite finds the disk full, release the reserve, evict images
        (deleting them now: the record needs their room) and try once more. Under the write
        lock."""
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc, self.data_dir):
                raise
            log.error("outbox: the disk is full (%s): making room for the record", exc)
            self._disk.make_room()
            self._evicted.delete(self._evict())
            return write()

    def replace_unsent(self, finding: Finding, jpeg: bytes | None) -> bool:
        """Update a stored finding that the broker has not acknowledged yet: a repeat sighting
        of the same damage (a better frame, or one more sighting). ``jpeg`` None keeps the
        image. False, changing nothing, when it is unknown or was ever sent: the office may have
        it (and stores a finding once, so a later version would not count there).
        """
        if jpeg is not None and not is_jpeg(jpeg):
            raise ValueError(f"finding {finding.id}: image bytes are not a JPEG")
        payload = rows.payload_of(finding)
        with self._wlock:
            old = rows.unsent_image_of(self._wconn, finding.id)
            if old is None:
                return False
            image = old
            if jpeg is not None:
                # Its old image may have been evicted and still be on its way out under the
                # very name store_image writes: that late unlink must not hit the new file.
                self._evicted.wait_gone(f"{finding.id}.jpg")
                new_name, new_bytes = store_image(self.images_dir, finding, jpeg)
                if new_name is not None:
                    image = (new_name, new_bytes, "pending")
            old_bytes = old[1] if old[0] is not None and old[2] == "pending" else 0

            def update() -> bool:
                with transaction(self._wconn) as conn:
                    rows.update_unsent_finding(
                        conn, finding, payload, image=image, old_pending_bytes=old_bytes
                    )
                return True

            self._retry_when_full(update)
            self._writes += 1
            return True

    def attach_image(self, finding: Finding, jpeg: bytes, note: str | None = None) -> bool:
        """Store the image of a finding whose record is already stored (the privacy stage
        anonymises it after the record was written), sent or not, replacing an image the
        office has not had; ``note`` goes into its EXIF. False, changing nothing, when the
        finding is unknown or the office already has an image of it."""
        if not is_jpeg(jpeg):
            raise ValueError(f"finding {finding.id}: image bytes are not a JPEG")
        with self._wlock:
            old = rows.image_of(self._wconn, finding.id)
            if old is None or old[2] == "sent":
                return False
            self._evicted.wait_gone(f"{finding.id}.jpg")  # see replace_unsent
            name, size = store_image(self.images_dir, finding, jpeg, note)
            old_bytes = old[1] if old[0] is not None and old[2] == "pending" else 0

            def record() -> bool:
                with transaction(self._wconn) as conn:
                    if name is None:
                        bump(conn, IMAGES_MISSING, 1)
                    else:
                        rows.set_image(conn, finding.id, name, size, old_pending_bytes=old_bytes)
                return True

            if not self._record_image(finding, name, record):
                return False
            self._writes += 1
            evicted = self._evict()
        self._evicted.delete(evicted)
        return name is not None

    def _record_image(self, finding: Finding, name: str | None, record: Callable[[], bool]) -> bool:
        """Note an attached image (or its absence) in the database, making room once if the
        disk is full; if even that finds no room the photo goes (its record is stored
        already), said in one line. Under the write lock."""
        try:
            return self._retry_when_full(record)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc, self.data_dir):
                raise
            if name is not None:
                (self.images_dir / name).unlink(missing_ok=True)
            log.error(
                "outbox: the disk is full (%s): finding %s is kept without its image",
                exc,
                finding.id,
            )
            return False

    def count_frame(self, grade: int) -> None:
        """Count a graded frame (grade-0 frames are only counted, never stored).

        Counts reach the database with the next finding or within a few seconds, so a crash
        may lose the last seconds of counts, never a finding.
        """
        with self._wlock:
            if self._frame_counts.add(grade):
                self._flush_counts()

    def _flush_counts(self) -> None:
        if not self._frame_counts:
            return
        try:
            with transaction(self._wconn) as conn:
                written = self._frame_counts.write(conn)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc, self.data_dir):
                raise
            # Counts are statistics: they wait in memory for room rather than take a photo's.
            log.warning("outbox: the disk is full: frame counts not stored yet (%s)", exc)
            self._frame_counts.postponed()
            return
        self._frame_counts.written(written)

    def _maybe_prune(self) -> None:
        # Piggy-backed on marks and receipts (the sync threads, never the capture path), at
        # most every few minutes: no thread of its own to start and stop.
        if self._retention is not None and self._retention.due():
            self.prune_sent()

    # --- disk limits and retention ---------------------------------------------------------

    def _evict(self) -> list[tuple[str, int]]:
        """Commit evictions (the caller holds the write lock); returns the files for
        ``self._evicted.delete`` once the caller has released it. Housekeeping: when its
        commit finds the disk full, the reserve gives it room; if it still fails, the write
        that came first stands and the next one tries again."""

        def evict() -> list[tuple[str, int]]:
            return enforce_limits(
                self._wconn,
                self.images_dir,
                self.image_cap_bytes,
                self._disk.target_free_bytes,
                freeing_bytes=self._evicted.freeing_bytes,
            )

        try:
            try:
                victims = evict()
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc, self.data_dir) or not self._disk.make_room():
                    raise
                victims = evict()
        except sqlite3.OperationalError as exc:
            log.warning("outbox: evicting images failed (%s); trying again at the next write", exc)
            return []
        if victims:
            self._writes += 1
            self._disk.evicted(len(victims), self._monotonic())
        else:
            self._disk.restore_reserve()
        return self._evicted.claim(victims)

    def prune_sent(self) -> Pruned:
        """Run a retention pass now (it also runs by itself; see the module docstring).
        Nothing happens when this Outbox was opened without ``keep_sent_s``."""
        if self._retention is None:
            return Pruned()
        try:
            pruned = self._retention.run(self._wlock, self._wconn, self.images_dir)
        except (sqlite3.Error, OSError) as exc:
            # Housekeeping: a busy or failing disk must not fail the caller's write.
            log.warning("outbox: pruning sent records failed (%s); trying again later", exc)
            return Pruned(done=False)
        if pruned.anything:
            self._writes += 1
        return pruned


__all__ = ["Outbox", "OutboxError"]
