"""Read-side queries of the outbox, shared by the Outbox and the read-only `outbox status`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.outbox.receipts import awaiting
from edge.wire.serialize import parse_utc

GRADES = ("0", "1", "2", "3")
# Names in the counters table.
FRAMES_COUNTER = "frames_grade_{grade}"
IMAGES_EVICTED = "images_evicted"
EVICTED_BYTES = "evicted_bytes"
IMAGE_BYTES_ON_DISK = "image_bytes_on_disk"
IMAGES_MISSING = "images_missing"
# Retention (edge.outbox.retention): records deleted after the office had them long enough.
PRUNED_FINDINGS = "pruned_findings_grade_{grade}"
PRUNED_IMAGES = "pruned_images"
PRUNED_IMAGE_BYTES = "pruned_image_bytes"
PRUNED_TRACK_POINTS = "pruned_track_points"


@dataclass(frozen=True, slots=True)
class PendingFinding:
    """A finding the office has not acknowledged yet; ``finding`` is its JSON dict."""

    finding_id: str
    grade: int
    captured_at_utc: datetime
    finding: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingImage:
    """The picture of a finding the office already has, not yet sent itself."""

    finding_id: str
    path: Path
    size_bytes: int
    grade: int


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One point of the patrol route, as stored."""

    id: int
    time_utc: datetime | None
    lat_deg: float
    lon_deg: float
    speed_mps: float | None
    track_deg: float | None
    hdop: float | None
    fix_mode: int


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    """Everything `roadpatrol outbox status` reports (its JSON keys are these field names)."""

    pending: int  # findings not yet acknowledged by the broker
    pending_bytes: int  # their JSON plus every image not yet sent that is still on disk
    pending_images: int
    pending_image_bytes: int
    pending_track_points: int
    oldest_age_s: float | None  # age of the oldest unsent finding (by capture time)
    oldest_captured_at_utc: str | None
    # Every finding record ever stored here: unsent ones are never dropped, and those pruned
    # after the office had them for ``keep_sent_days`` still count.
    stored: int
    stored_by_grade: dict[str, int]
    pending_by_grade: dict[str, int]
    images_on_disk: int
    image_bytes_on_disk: int
    evictions: int  # images deleted to respect the cap or the free-space floor
    evicted_bytes: int
    images_missing: int  # images that vanished from disk before they were sent
    frames_by_grade: dict[str, int]  # graded frames, grade 0 included (those are not stored)
    # Deleted by retention after the office had them long enough (new fields go last).
    pruned_findings: int = 0
    pruned_images: int = 0
    pruned_image_bytes: int = 0
    pruned_track_points: int = 0
    # Acknowledged by the broker, not yet receipted by the office (edge.outbox.receipts).
    awaiting_receipt: int = 0
    awaiting_receipt_images: int = 0
    awaiting_receipt_age_s: float | None = None  # since the oldest was first acknowledged
    last_receipt_age_s: float | None = None  # None: no receipt ever
    office_silent_s: float | None = None  # nothing confirmed for this long while records wait


def exclusion_json(exclude: Collection[str]) -> str:
    """The ids to leave out, as one JSON parameter for ``json_each`` (no variable limit)."""
    return json.dumps(list(exclude))


def pending_findings(
    conn: sqlite3.Connection, limit: int, exclude: Collection[str] = ()
) -> list[PendingFinding]:
    rows = conn.execute(
        "SELECT id, grade, captured_at_utc, payload FROM findings "
        "WHERE sent_at IS NULL AND id NOT IN (SELECT value FROM json_each(?)) "
        "ORDER BY grade DESC, captured_at_utc, id LIMIT ?",
        (exclusion_json(exclude), limit),
    ).fetchall()
    return [
        PendingFinding(
            finding_id=fid,
            grade=grade,
            captured_at_utc=parse_utc(captured, "captured_at_utc"),
            finding=json.loads(payload),
        )
        for fid, grade, captured, payload in rows
    ]


def unsent_image_rows(
    conn: sqlite3.Connection, limit: int, exclude: Collection[str]
) -> list[tuple[str, str, int, int]]:
    """(id, image_name, image_bytes, grade) of images to send next: grade 3 first, then by
    grade descending, oldest first. Read in order from the index findings_images_to_send
    (schema.DDL), so a call costs its ``limit``, not the backlog."""
    rows: list[tuple[str, str, int, int]] = conn.execute(
        "SELECT id, image_name, image_bytes, grade FROM findings "
        "WHERE sent_at IS NOT NULL AND image_state = 'pending' "
        "AND id NOT IN (SELECT value FROM json_each(?)) "
        "ORDER BY grade DESC, captured_at_utc, id LIMIT ?",
        (exclusion_json(exclude), limit),
    ).fetchall()
    return rows


def pending_track(conn: sqlite3.Connection, limit: int) -> list[TrackPoint]:
    rows = conn.execute(
        "SELECT id, time_utc, lat_deg, lon_deg, speed_mps, track_deg, hdop, fix_mode "
        "FROM track WHERE sent_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        TrackPoint(
            id=r[0],
            time_utc=None if r[1] is None else parse_utc(r[1], "track.time_utc"),
            lat_deg=r[2],
            lon_deg=r[3],
            speed_mps=r[4],
            track_deg=r[5],
            hdop=r[6],
            fix_mode=r[7],
        )
        for r in rows
    ]


def counters(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(value) for name, value in conn.execute("SELECT name, value FROM counters")}


def summary(conn: sqlite3.Connection, now: datetime | None = None) -> OutboxSummary:
    now = now or datetime.now(UTC)
    pending, payload_bytes, oldest = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(payload_bytes), 0), MIN(captured_at_utc) "
        "FROM findings WHERE sent_at IS NULL"
    ).fetchone()
    pending_images, pending_image_bytes = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(image_bytes), 0) FROM findings WHERE image_state = 'pending'"
    ).fetchone()
    images_on_disk, image_bytes_on_disk = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(image_bytes), 0) FROM findings "
        "WHERE image_state IN ('pending', 'sent')"
    ).fetchone()
    (pending_track_points,) = conn.execute(
        "SELECT COUNT(*) FROM track WHERE sent_at IS NULL"
    ).fetchone()
    stored_by_grade = dict.fromkeys(GRADES, 0)
    pending_by_grade = dict.fromkeys(GRADES, 0)
    for grade, total, unsent in conn.execute(
        "SELECT grade, COUNT(*), SUM(sent_at IS NULL) FROM findings GROUP BY grade"
    ):
        stored_by_grade[str(grade)] = int(total)
        pending_by_grade[str(grade)] = int(unsent)
    counts = counters(conn)
    pruned_by_grade = {g: counts.get(PRUNED_FINDINGS.format(grade=g), 0) for g in GRADES}
    for g, n in pruned_by_grade.items():
        stored_by_grade[g] += n
    waiting = awaiting(conn, now)
    oldest_age_s = None
    if oldest is not None:
        oldest_age_s = round(max(0.0, (now - parse_utc(oldest)).total_seconds()), 3)
    return OutboxSummary(
        pending=int(pending),
        pending_bytes=int(payload_bytes) + int(pending_image_bytes),
        pending_images=int(pending_images),
        pending_image_bytes=int(pending_image_bytes),
        pending_track_points=int(pending_track_points),
        oldest_age_s=oldest_age_s,
        oldest_captured_at_utc=oldest,
        stored=sum(stored_by_grade.values()),
        stored_by_grade=stored_by_grade,
        pending_by_grade=pending_by_grade,
        images_on_disk=int(images_on_disk),
        image_bytes_on_disk=int(image_bytes_on_disk),
        evictions=counts.get(IMAGES_EVICTED, 0),
        evicted_bytes=counts.get(EVICTED_BYTES, 0),
        images_missing=counts.get(IMAGES_MISSING, 0),
        frames_by_grade={g: counts.get(FRAMES_COUNTER.format(grade=g), 0) for g in GRADES},
        pruned_findings=sum(pruned_by_grade.values()),
        pruned_images=counts.get(PRUNED_IMAGES, 0),
        pruned_image_bytes=counts.get(PRUNED_IMAGE_BYTES, 0),
        pruned_track_points=counts.get(PRUNED_TRACK_POINTS, 0),
        awaiting_receipt=waiting.findings,
        awaiting_receipt_images=waiting.images,
        awaiting_receipt_age_s=waiting.oldest_age_s,
        last_receipt_age_s=waiting.last_receipt_age_s,
        office_silent_s=waiting.office_silent_s,
    )
