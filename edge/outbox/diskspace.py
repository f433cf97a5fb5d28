"""A full disk is not a corrupt database: telling them apart, and making room for records.

Three guards, so that a finding record can always be written even when something else (a
log, a dashcam's own files, a ballast) fills the disk:

- **A reserve file** (``outbox.reserve``, a few MiB, a share of the disk) is kept allocated
  in the data directory. When SQLite reports a full disk, at start or while recording, it is
  deleted first: its room is what the records and the WAL live in while images are evicted.
  It comes back once the disk has room again.
- **A floor that fits the disk**: the configured ``min_free_mb`` is lowered to a share of a
  small disk (500 MiB on a 30 MiB card would evict every photo) and raised to the reserve's
  size when it is below (``min_free_mb = 0`` let images take the last byte the records need);
  either change is logged at start.
- **Room before opening**: when the database cannot even be opened for lack of room (SQLite
  needs a few pages for its ``-shm`` and ``-wal`` files), the reserve goes, then images are
  evicted, chosen by reading the database immutably (it opens without writing a byte).

Only SQLite's SQLITE_CORRUPT and SQLITE_NOTADB mean corruption; an I/O error or a full disk
never sets a database aside.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

RESERVE_NAME = "outbox.reserve"
_KIB, _MIB = 1024, 1024 * 1024
RESERVE_SHARE = 0.02  # of the disk, between these bounds
RESERVE_MIN_BYTES = 128 * _KIB
RESERVE_MAX_BYTES = 4 * _MIB
FLOOR_MAX_SHARE = 0.2  # a configured floor above this share of the disk is lowered to it

_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_corruption(exc: BaseException) -> bool:
    """A damaged database (SQLITE_CORRUPT, SQLITE_NOTADB): the only reason to set it aside."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB))
    )


def is_disk_full(exc: BaseException, path: Path | None = None) -> bool:
    """SQLITE_FULL, ENOSPC/EDQUOT, or an SQLite I/O error on a disk with (almost) no room:
    SQLite says "disk I/O error" when it cannot grow its shared-memory file."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return False
    if code & 0xFF == _SQLITE_FULL:
        return True
    if code & 0xFF == _SQLITE_IOERR and path is not None:
        return free_bytes(path) < reserve_bytes_for(path)
    return False


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def reserve_bytes_for(path: Path) -> int:
    """The reserve's size for the disk ``path`` is on: a share, within fixed bounds."""
    total = shutil.disk_usage(path).total
    return int(min(RESERVE_MAX_BYTES, max(RESERVE_MIN_BYTES, total * RESERVE_SHARE)))


def wal_pages_for(path: Path) -> int:
    """WAL pages between checkpoints (SQLite's default 1000 is 4 MiB: the whole of a small
    disk), so that the WAL fits in the reserve's room."""
    return int(min(1000, max(16, reserve_bytes_for(path) // 4096 // 2)))


def effective_floor(configured_bytes: int, path: Path) -> tuple[int, str | None]:
    """The free-space floor to keep on this disk, and why it differs from the configured one
    (None when it does not)."""
    total = shutil.disk_usage(path).total
    least = reserve_bytes_for(path)
    most = max(least, int(total * FLOOR_MAX_SHARE))
    floor = min(max(configured_bytes, least), most)
    if floor == configured_bytes:
        return floor, None
    why = (
        f"more than {FLOOR_MAX_SHARE:.0%} of the {total / _MIB:.1f} MiB disk"
        if floor < configured_bytes
        else "too little for the records to live in"
    )
    note = (
        f"outbox: min_free_mb {configured_bytes / _MIB:g} MiB is {why} at {path}; "
        f"keeping {floor / _MIB:.2f} MiB free instead"
    )
    return floor, note


class Reserve:
    """The reserve file: room held back for records and the WAL (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / RESERVE_NAME
        self.size = reserve_bytes_for(data_dir)

    @property
    def present(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def release(self) -> bool:
        """Delete it to give its room to the records; True when there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning(
            "outbox: the disk at %s is full: released the %.2f MiB reserve so that findings "
            "can still be recorded; evicting images to make room",
            self.path.parent,
            self.size / _MIB,
        )
        return True

    def ensure(self, floor_bytes: int) -> bool:
        """Allocate it if the disk has room for it above the floor; True when it is there."""
        if self.present:
            return True
        if free_bytes(self.path.parent) - self.size < floor_bytes:
            return False
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("outbox: cannot allocate the reserve %s (%s)", self.path, exc)
            return False
        return True


def evict_before_open(db_path: Path, images_dir: Path, need_bytes: int) -> list[str]:
    """Delete image files to free ``need_bytes`` when the database cannot be opened for lack
    of room: sent images first, then unsent, lowest grade, oldest (the eviction order), read
    with ``immutable=1`` (no -shm, no -wal: nothing written). Returns the file names deleted,
    for the caller to mark their rows evicted once the database opens."""
    uri = f"{db_path.resolve().as_uri()}?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            candidates = conn.execute(
                "SELECT image_name FROM findings WHERE image_state IN ('sent', 'pending') "
                "ORDER BY image_state = 'pending', grade, captured_at_utc, id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("outbox: cannot read %s to choose images to evict (%s)", db_path, exc)
        return []
    deleted: list[str] = []
    freed = 0
    for (name,) in candidates:
        if freed >= need_bytes:
            break
        path = images_dir / name
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            continue
        deleted.append(name)
        freed += size
    if deleted:
        log.warning(
            "outbox: the disk at %s is full: evicted %d images (%d bytes) before opening the "
            "outbox; no finding record was dropped",
            images_dir.parent,
            len(deleted),
            freed,
        )
    return deleted


def make_room_to_open(data_dir: Path, db_path: Path, images_dir: Path) -> list[str]:
    """Free what opening the database needs; returns the image files deleted for it."""
    Reserve(data_dir).release()
    need = reserve_bytes_for(data_dir) - free_bytes(data_dir)
    if need <= 0:
        return []
    return evict_before_open(db_path, images_dir, need)


EVICTING_ALERT_S = 120.0  # the driver sees "evicting images" this long after the last one


class DiskGuard:
    """The Outbox's view of its disk: the floor in force, the reserve, and whether images
    were evicted lately (the driver is told). Methods are called under the write lock, except
    the read-only properties."""

    def __init__(self, data_dir: Path, configured_floor_bytes: int) -> None:
        self.data_dir = data_dir
        self.floor_bytes, note = effective_floor(configured_floor_bytes, data_dir)
        self.reserve = Reserve(data_dir)
        self.notes: list[str] = []  # said at start, on stderr by `run` as well as in the log
        if note is not None:
            self.note(note)
        self._last_eviction: float | None = None
        self._reserve_missing = True  # checked (and allocated) by restore_reserve

    def note(self, message: str) -> None:
        log.warning("%s", message)
        self.notes.append(message)

    def evicted(self, count: int, now: float) -> None:
        if count:
            self._last_eviction = now

    def evicting(self, now: float) -> bool:
        last = self._last_eviction
        return last is not None and now - last < EVICTING_ALERT_S

    def disk_low(self, free: int, now: float) -> bool:
        """Low while images are being evicted for room, or within 10 % of the floor: the
        eviction itself holds free space at the floor, so ``free < floor`` alone never is."""
        return self.evicting(now) or free < self.floor_bytes * 1.1 or not self.reserve.present

    @property
    def target_free_bytes(self) -> int:
        """What eviction keeps free: the floor, plus the reserve's room while it is gone."""
        return self.floor_bytes + (self.reserve.size if self._reserve_missing else 0)

    def make_room(self) -> bool:
        """SQLite reported a full disk: give the reserve's room to the records. True when
        that freed anything."""
        self._reserve_missing = True
        return self.reserve.release()

    def restore_reserve(self) -> None:
        """Allocate the reserve again once the disk has room for it above the floor."""
        if self._reserve_missing:
            self._reserve_missing = not self.reserve.ensure(self.floor_bytes)
