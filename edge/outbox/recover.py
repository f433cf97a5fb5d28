"""Salvage: every readable record and image of a damaged or set-aside outbox, back in the
live one, so that the publisher sends them. Idempotent by finding id: running it twice adds
nothing the second time.

A damaged SQLite file is read as far as it goes (edge.outbox.damaged). A row the indexes
know but the table cannot give back is unreadable; if its picture survived, the picture
rebuilds it (edge.outbox.exif_finding), as for the images in ``quarantine/``
(edge.outbox.quarantine). Pictures are moved into the live outbox (copied from another disk).

Rows are copied by the columns both databases share, read from the live schema, so that a
column a later version adds is carried over without this module knowing about it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.outbox import rows
from edge.outbox.damaged import columns, open_source, read_table
from edge.outbox.exif_finding import FINDING_ID, NotAFindingImage, finding_from_jpeg
from edge.outbox.images import is_jpeg, write_atomic
from edge.outbox.queries import IMAGE_BYTES_ON_DISK
from edge.outbox.schema import DB_NAME, IMAGES_DIR, connect
from edge.outbox.space import bump, transaction
from edge.wire.serialize import FindingFormatError, finding_from_dict

log = logging.getLogger(__name__)

UNKNOWN_VEHICLE = "unknown"


@dataclass(frozen=True, slots=True)
class Salvaged:
    """What one salvage did (the JSON keys of `outbox recover --json`)."""

    source: str
    salvaged: int = 0  # finding records added to the live outbox
    already_present: int = 0  # read, but the live outbox had that id already
    rebuilt_from_images: int = 0  # of ``salvaged``: records rebuilt from a picture's EXIF
    unreadable: int = 0  # records known to exist (an index has them) that nothing gave back
    images: int = 0  # pictures brought into the live outbox
    images_lost: int = 0  # pictures a salvaged record had, not found or not a JPEG
    track_points: int = 0  # unsent route points added

    def __add__(self, other: Salvaged) -> Salvaged:
        return Salvaged(
            self.source,
            *(getattr(self, f) + getattr(other, f) for f in _COUNTS),
        )

    def line(self) -> str:
        return (
            f"{self.source}: salvaged {self.salvaged} findings "
            f"({self.rebuilt_from_images} rebuilt from images, {self.images} images), "
            f"{self.already_present} already in the outbox, {self.unreadable} unreadable, "
            f"{self.images_lost} images lost, {self.track_points} track points"
        )


_COUNTS = (
    "salvaged",
    "already_present",
    "rebuilt_from_images",
    "unreadable",
    "images",
    "images_lost",
    "track_points",
)


def _bring_image(src: Path, images_dir: Path) -> int | None:
    """Move (same disk: no room needed) or copy a picture into the live images; its size,
    or None when it is not there or not a JPEG."""
    target = images_dir / src.name
    try:
        with open(src, "rb") as fh:
            head = fh.read(3)
        if not is_jpeg(head):
            return None
        try:
            os.replace(src, target)
        except OSError:  # another disk
            write_atomic(target, src.read_bytes())
            src.unlink(missing_ok=True)
        return target.stat().st_size
    except OSError:
        return None


class Live:
    """The live outbox, written through a connection of its own (the recorder may run)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.images_dir = data_dir / IMAGES_DIR
        self.conn = connect(data_dir / DB_NAME, busy_timeout_s=30.0)
        self.finding_cols = columns(self.conn, "findings")
        self.track_cols = columns(self.conn, "track")

    def close(self) -> None:
        self.conn.close()

    def has(self, finding_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM findings WHERE id = ?", (finding_id,)).fetchone()
        return row is not None

    def vehicle_id(self) -> str:
        row = self.conn.execute(
            "SELECT payload FROM findings ORDER BY stored_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return UNKNOWN_VEHICLE
        vehicle = json.loads(row[0]).get("vehicle_id")
        return vehicle if isinstance(vehicle, str) else UNKNOWN_VEHICLE

    def adopt_image(self, finding_id: str, path: Path, data: bytes) -> None:
        """A picture of a finding the outbox has: the record's image again if it lost it,
        else a duplicate, deleted (the outbox holds the same picture)."""
        name = f"{finding_id}.jpg"
        (state,) = self.conn.execute(
            "SELECT image_state FROM findings WHERE id = ?", (finding_id,)
        ).fetchone()
        if state not in ("pending", "sent") or not (self.images_dir / name).is_file():
            write_atomic(self.images_dir / name, data)
            with transaction(self.conn) as conn:
                conn.execute(
                    "UPDATE findings SET image_name = ?, image_bytes = ?, image_state = 'pending' "
                    "WHERE id = ?",
                    (name, len(data), finding_id),
                )
                if state not in ("pending", "sent"):
                    bump(conn, IMAGE_BYTES_ON_DISK, len(data))
        path.unlink(missing_ok=True)

    def insert_row(self, row: dict[str, Any]) -> bool:
        cols = [c for c in self.finding_cols if c in row]
        with transaction(self.conn) as conn:
            added = conn.execute(
                f"INSERT OR IGNORE INTO findings ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            ).rowcount
            if added and row.get("image_state") in ("pending", "sent"):
                bump(conn, IMAGE_BYTES_ON_DISK, int(row.get("image_bytes") or 0))
        return bool(added)

    def insert_track(self, row: dict[str, Any]) -> bool:
        cols = [c for c in self.track_cols if c in row and c != "id"]
        with transaction(self.conn) as conn:
            dup = conn.execute(
                "SELECT 1 FROM track WHERE time_utc IS ? AND lat_deg = ? AND lon_deg = ?",
                (row.get("time_utc"), row.get("lat_deg"), row.get("lon_deg")),
            ).fetchone()
            if dup:
                return False
            conn.execute(
                f"INSERT INTO track ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
        return True


def _valid(row: dict[str, Any]) -> bool:
    """A row worth sending: its payload is a finding with the row's id, a UUID, and its
    image (if any) is named after it (a damaged or planted row must not name other files)."""
    try:
        finding = finding_from_dict(json.loads(row["payload"]))
    except (KeyError, TypeError, ValueError, FindingFormatError):
        return False
    name = row.get("image_name")
    return (
        finding.id == row.get("id")
        and FINDING_ID.match(finding.id) is not None
        and name in (None, f"{finding.id}.jpg")
    )


def rebuild_from_image(live: Live, path: Path, vehicle_id: str) -> str:
    """One picture whose record is lost: "salvaged", "present" or "unreadable"."""
    try:
        data = path.read_bytes()
        finding = finding_from_jpeg(data, vehicle_id)
    except (OSError, NotAFindingImage) as exc:
        log.warning("salvage: %s: cannot rebuild a finding from it (%s)", path, exc)
        return "unreadable"
    if live.has(finding.id):
        live.adopt_image(finding.id, path, data)
        return "present"
    name = f"{finding.id}.jpg"
    write_atomic(live.images_dir / name, data)  # before the row, as the Outbox does
    payload = rows.payload_of(finding)
    with transaction(live.conn) as conn:
        rows.insert_finding(
            conn, finding, payload, stored_at=time.time(), image_name=name, image_bytes=len(data)
        )
    path.unlink(missing_ok=True)
    return "salvaged"


def _salvage_row(live: Live, row: dict[str, Any], images_src: Path | None) -> tuple[str, int]:
    """("salvaged" | "present", images brought in (1) or lost (-1) or 0)."""
    if live.has(row["id"]):
        return "present", 0
    image = 0
    if row.get("image_state") in ("pending", "sent") and row.get("image_name"):
        size = (
            None
            if images_src is None
            else _bring_image(images_src / row["image_name"], live.images_dir)
        )
        if size is None:
            row["image_state"], image = "missing", -1
        else:
            row["image_bytes"], image = size, 1
    live.insert_row(row)
    return "salvaged", image


def salvage_database(src: Path, data_dir: Path, images_src: Path | None = None) -> Salvaged:
    """Copy what can be read of ``src`` (and its pictures in ``images_src``) into the live
    outbox of ``data_dir``."""
    conn = open_source(src)
    live = Live(data_dir)
    try:
        src_cols = columns(conn, "findings") or ["id"]
        got, lost = read_table(conn, "findings", src_cols)
        counts = {"salvaged": 0, "present": 0, "images": 0, "lost_images": 0, "bad": 0}
        for values in got.values():
            row = dict(zip(src_cols, values, strict=True))
            if not _valid(row):
                counts["bad"] += 1
                continue
            what, image = _salvage_row(live, row, images_src)
            counts[what] += 1
            counts["images"] += image > 0
            counts["lost_images"] += image < 0
        named = [fid for fid in lost.values() if fid is not None]
        rebuilt, unreadable = _rebuild_lost(live, named, images_src)
        # Rows lost with the index page that named them: the pictures left over (no row
        # claimed them) are theirs, or orphans of a crash; either way rebuilt from EXIF.
        extra = _rebuild_leftovers(live, images_src)
        unreadable += max(0, len(lost) - len(named) - extra) + counts["bad"]
        track = _salvage_track(conn, live)
    finally:
        live.close()
        conn.close()
    return Salvaged(
        source=str(src),
        salvaged=counts["salvaged"] + rebuilt + extra,
        already_present=counts["present"],
        rebuilt_from_images=rebuilt + extra,
        unreadable=unreadable,
        images=counts["images"] + rebuilt + extra,
        images_lost=counts["lost_images"],
        track_points=track,
    )


def _rebuild_leftovers(live: Live, images_src: Path | None) -> int:
    if images_src is None or images_src.resolve() == live.images_dir.resolve():
        return 0
    vehicle = live.vehicle_id()
    outcomes = [rebuild_from_image(live, p, vehicle) for p in sorted(images_src.glob("*.jpg"))]
    return outcomes.count("salvaged")


def _rebuild_lost(live: Live, ids: Any, images_src: Path | None) -> tuple[int, int]:
    """Rows only an index still knows: rebuilt from their picture when it survived."""
    rebuilt = unreadable = 0
    vehicle = live.vehicle_id()
    for finding_id in ids:
        known = images_src is not None and finding_id is not None
        path = images_src / f"{finding_id}.jpg" if known and images_src else None
        if path is not None and path.is_file():
            outcome = rebuild_from_image(live, path, vehicle)
            rebuilt += outcome == "salvaged"
            unreadable += outcome == "unreadable"
        else:
            unreadable += 1
    return rebuilt, unreadable


def _salvage_track(conn: sqlite3.Connection, live: Live) -> int:
    cols = columns(conn, "track")
    if not cols:
        return 0
    got, _ = read_table(conn, "track", cols)
    added = 0
    for values in got.values():
        row = dict(zip(cols, values, strict=True))
        if row.get("sent_at") is None and live.insert_track(row):
            added += 1
    return added


def salvage_images(paths: list[Path], data_dir: Path, source: str) -> Salvaged:
    """Rebuild findings from pictures without a record (quarantine/, a set-aside images/)."""
    live = Live(data_dir)
    try:
        vehicle = live.vehicle_id()
        outcomes = [rebuild_from_image(live, p, vehicle) for p in paths]
    finally:
        live.close()
    salvaged = outcomes.count("salvaged")
    return Salvaged(
        source=source,
        salvaged=salvaged,
        already_present=outcomes.count("present"),
        rebuilt_from_images=salvaged,
        unreadable=outcomes.count("unreadable"),
        images=salvaged,
    )


def images_beside(db: Path) -> Path | None:
    """The pictures of a set-aside database ``outbox.sqlite3.<tag>``: ``images.<tag>``."""
    prefix = f"{DB_NAME}."
    if db.name.startswith(prefix):
        folder = db.with_name(f"{IMAGES_DIR}.{db.name.removeprefix(prefix)}")
        if folder.is_dir():
            return folder
    return None


def salvage_at_open(moved: Path, data_dir: Path) -> str:
    """Salvage a database the Outbox has just set aside; the line to log and show."""
    try:
        report = salvage_database(moved, data_dir, images_beside(moved))
    except Exception as exc:  # opening the new outbox must not fail for the salvage
        log.exception("outbox: salvaging %s failed", moved)
        return (
            f"outbox: could not salvage {moved} ({exc}); try `roadpatrol outbox recover "
            f"{moved} --data-dir {data_dir}`"
        )
    return "outbox: " + report.line()
