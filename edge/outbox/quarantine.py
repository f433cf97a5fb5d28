"""Images whose row is missing are moved to ``quarantine/``, never deleted.

A row can go missing after its image was written: a kill -9 between the image's rename and
the row's commit, or a WAL cut short (a power cut on a card that lied about its fsync), which
silently drops the last committed transactions. The image is then the finding's last copy:
its EXIF carries the time, the GPS position, the id and grade, and (since this version) the
finding's whole record. At open the lock holder moves such files here (a rename: it takes no
room on a full disk); ``roadpatrol outbox recover`` rebuilds records from them
(edge.outbox.recover) and ``roadpatrol outbox status`` counts them.

Files whose row is there but evicted or missing are leftovers of an eviction's late unlink
(edge.outbox.unlinking): those are deleted, as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from edge.outbox.images import TMP_SUFFIX
from edge.outbox.queries import EVICTED_BYTES, IMAGE_BYTES_ON_DISK, IMAGES_EVICTED
from edge.outbox.space import bump, transaction

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"


def quarantined(data_dir: Path) -> list[Path]:
    """The quarantined images of a data directory, oldest name first."""
    folder = data_dir / QUARANTINE_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg" and p.is_file())


def _quarantine(path: Path, folder: Path) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():  # a second copy of the same id (rebuilt twice): keep both
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    log.warning(
        "outbox: image %s has no record (lost from the database): moved to %s; "
        "`roadpatrol outbox recover` rebuilds its finding from the picture",
        path.name,
        target,
    )


def sort_orphans(conn: sqlite3.Connection, images_dir: Path) -> int:
    """Delete partial writes and leftovers of evicted rows; quarantine images without a row.
    Returns how many went to quarantine. The caller holds the write lock."""
    keep: set[str] = set()
    known: set[str] = set()
    for name, state in conn.execute(
        "SELECT image_name, image_state FROM findings WHERE image_name IS NOT NULL"
    ):
        known.add(name)
        if state in ("pending", "sent"):
            keep.add(name)
    moved = 0
    for path in images_dir.iterdir():
        if not path.is_file():
            continue
        if path.name.endswith(TMP_SUFFIX):
            log.info("outbox: deleting partly written image %s", path)
            path.unlink(missing_ok=True)
        elif path.suffix == ".jpg" and path.name not in keep:
            if path.name in known:
                log.info("outbox: deleting evicted image %s", path)
                path.unlink(missing_ok=True)
            else:
                _quarantine(path, images_dir.parent / QUARANTINE_DIR)
                moved += 1
    return moved


def mark_evicted(conn: sqlite3.Connection, names: list[str]) -> None:
    """Rows of images deleted before the database could open (a full disk): evicted, counted
    as such. In the caller's transaction."""
    for name in names:
        row = conn.execute(
            "UPDATE findings SET image_state = 'evicted' "
            "WHERE image_name = ? AND image_state IN ('pending', 'sent') RETURNING image_bytes",
            (name,),
        ).fetchone()
        if row is not None:
            bump(conn, IMAGES_EVICTED, 1)
            bump(conn, EVICTED_BYTES, row[0])


def tidy(conn: sqlite3.Connection, images_dir: Path, evicted_before_open: list[str]) -> int:
    """At open (the lock holder): sort the orphans, mark what a full disk made us delete
    before opening, and recount the bytes the images take. Returns how many images went to
    quarantine."""
    if evicted_before_open:
        with transaction(conn):
            mark_evicted(conn, evicted_before_open)
    moved = sort_orphans(conn, images_dir)
    with transaction(conn):
        (total,) = conn.execute(
            "SELECT COALESCE(SUM(image_bytes), 0) FROM findings "
            "WHERE image_state IN ('pending', 'sent')"
        ).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
            (IMAGE_BYTES_ON_DISK, total),
        )
    return moved


def opening_notes(data_dir: Path, evicted_before_open: int, quarantined: int) -> list[str]:
    """What the lock holder's tidy-up at open tells the operator (log, and `run`'s stderr)."""
    notes = []
    if evicted_before_open:
        notes.append(
            f"outbox: the disk at {data_dir} was full: evicted {evicted_before_open} images "
            "to open the outbox; every record was kept"
        )
    if quarantined:
        notes.append(
            f"outbox: {quarantined} images had no record (lost from the database) and were "
            f"moved to {data_dir / QUARANTINE_DIR}; run `roadpatrol outbox recover "
            f"--data-dir {data_dir}` to rebuild their findings"
        )
    return notes
