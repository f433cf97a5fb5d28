"""Write-side SQL of the outbox rows (queries.py holds the read side).

Each function runs inside the caller's transaction, under the Outbox's write lock, and keeps
the byte counters in step with the rows it changes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence

from edge.outbox.queries import IMAGE_BYTES_ON_DISK, IMAGES_MISSING
from edge.outbox.space import bump
from edge.types import Finding, Fix
from edge.wire.serialize import finding_to_dict, format_utc

log = logging.getLogger(__name__)

# Parameters: (Unix seconds now, id). Each changes a row at most once per send. The first
# acknowledgement is kept: the wait for the office's receipt grows from it (edge.outbox.receipts).
MARK_FINDING_SENT = (
    "UPDATE findings SET sent_at = ?1, first_sent_at = COALESCE(first_sent_at, ?1) "
    "WHERE id = ?2 AND sent_at IS NULL"
)
MARK_IMAGE_SENT = (
    "UPDATE findings SET image_state = 'sent', image_sent_at = ?1, "
    "image_first_sent_at = COALESCE(image_first_sent_at, ?1) "
    "WHERE id = ?2 AND image_state = 'pending'"
)
MARK_TRACK_SENT = "UPDATE track SET sent_at = ? WHERE id = ? AND sent_at IS NULL"


def payload_of(finding: Finding) -> str:
    return json.dumps(finding_to_dict(finding), ensure_ascii=False, separators=(",", ":"))


def insert_finding(
    conn: sqlite3.Connection,
    finding: Finding,
    payload: str,
    *,
    stored_at: float,
    image_name: str | None,
    image_bytes: int,
) -> bool:
    """Insert a new finding row; False (nothing changed) when its id is already there."""
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
            stored_at,
            image_name,
            image_bytes,
            "none" if image_name is None else "pending",
        ),
    ).rowcount
    if inserted and image_bytes:
        bump(conn, IMAGE_BYTES_ON_DISK, image_bytes)
    return bool(inserted)


def unsent_image_of(
    conn: sqlite3.Connection, finding_id: str
) -> tuple[str | None, int, str] | None:
    """(image_name, image_bytes, image_state) of a finding never sent; None when it is
    unknown or the broker acknowledged it once (the office may have that version: one sent
    again for want of a receipt is sent as it was)."""
    row: tuple[str | None, int, str] | None = conn.execute(
        "SELECT image_name, image_bytes, image_state FROM findings "
        "WHERE id = ? AND sent_at IS NULL AND first_sent_at IS NULL",
        (finding_id,),
    ).fetchone()
    return row


def update_unsent_finding(
    conn: sqlite3.Connection,
    finding: Finding,
    payload: str,
    *,
    image: tuple[str | None, int, str],
    old_pending_bytes: int,
) -> None:
    """Rewrite a finding row with a repeat sighting; ``image`` is its (new) image triple,
    ``old_pending_bytes`` what the row's image counted on disk before."""
    image_name, image_bytes, image_state = image
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
    if image_state == "pending" and image_bytes != old_pending_bytes:
        bump(conn, IMAGE_BYTES_ON_DISK, image_bytes - old_pending_bytes)


def image_of(conn: sqlite3.Connection, finding_id: str) -> tuple[str | None, int, str] | None:
    """(image_name, image_bytes, image_state) of a stored finding, sent or not; None if
    unknown."""
    row: tuple[str | None, int, str] | None = conn.execute(
        "SELECT image_name, image_bytes, image_state FROM findings WHERE id = ?", (finding_id,)
    ).fetchone()
    return row


def set_image(
    conn: sqlite3.Connection, finding_id: str, name: str, size: int, *, old_pending_bytes: int
) -> None:
    """Point a stored finding at its (new) image file, to be sent."""
    conn.execute(
        "UPDATE findings SET image_name = ?, image_bytes = ?, image_state = 'pending', "
        "image_sent_at = NULL WHERE id = ?",
        (name, size, finding_id),
    )
    if size != old_pending_bytes:
        bump(conn, IMAGE_BYTES_ON_DISK, size - old_pending_bytes)


def insert_track_point(conn: sqlite3.Connection, fix: Fix, *, stored_at: float) -> int | None:
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
            stored_at,
        ),
    )
    return cur.lastrowid


def mark_images_missing(conn: sqlite3.Connection, finding_ids: Sequence[str]) -> None:
    """Unsent images that vanished from disk: the rows stop pointing at them."""
    log.warning(
        "outbox: %d unsent images vanished from disk: %s",
        len(finding_ids),
        ", ".join(finding_ids[:5]),
    )
    for fid in finding_ids:
        row = conn.execute(
            "UPDATE findings SET image_state = 'missing' "
            "WHERE id = ? AND image_state = 'pending' RETURNING image_bytes",
            (fid,),
        ).fetchone()
        if row is not None:
            bump(conn, IMAGES_MISSING, 1)
            bump(conn, IMAGE_BYTES_ON_DISK, -row[0])
