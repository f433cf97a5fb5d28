"""The vehicle's message builders: findings, image properties, track batches, status.

What goes on the wire (topics, ids, schemas and their validators) is the contract in
``edge.wire``, shared with the office; this module only builds the vehicle's messages from
its outbox records and status, following those schemas.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from edge import __version__ as software_version
from edge.outbox import TrackPoint
from edge.outbox.receipts import Awaiting
from edge.status import Status
from edge.wire.serialize import format_utc
from edge.wire.validate import FINDING, IMAGE_SCHEMA_TAG, STATUS, TRACK, schema_tag

MAX_REASON_CHARS = 1000  # a refusal's reason in the status message (the schema's maxLength)


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def finding_payload(finding: dict[str, Any], *, has_image: bool | None = None) -> bytes:
    """The finding's JSON form (edge.wire.serialize.finding_to_dict) tagged with its schema."""
    body: dict[str, Any] = {"schema": schema_tag(FINDING), **finding}
    if has_image is not None:
        body["has_image"] = has_image
    return _dumps(body)


def image_user_properties(
    finding: dict[str, Any], privacy: dict[str, Any] | None = None
) -> dict[str, str]:
    """``privacy``: the note in the image's EXIF (edge.privacy.anonymise.read_note)."""
    props = {
        "schema": IMAGE_SCHEMA_TAG,
        "finding_id": str(finding["id"]),
        "vehicle_id": str(finding["vehicle_id"]),
        "boot_id": str(finding["boot_id"]),
        "seq": str(finding["seq"]),
    }
    if privacy is not None:
        props["anonymised"] = "true" if privacy.get("anonymised") is True else "false"
        props["anonymiser"] = str(privacy.get("by", ""))[:MAX_REASON_CHARS]
    return props


def track_point_dict(point: TrackPoint) -> dict[str, Any]:
    return {
        "id": point.id,
        "t_utc": None if point.time_utc is None else format_utc(point.time_utc),
        "lat_deg": point.lat_deg,
        "lon_deg": point.lon_deg,
        "speed_mps": point.speed_mps,
        "heading_deg": point.track_deg,
        "hdop": point.hdop,
        "fix_mode": point.fix_mode,
    }


def track_payload(vehicle_id: str, boot_id: str, seq: int, points: list[TrackPoint]) -> bytes:
    """A batch of patrol-route points; (boot_id, seq) name the sending run and batch."""
    return _dumps(
        {
            "schema": schema_tag(TRACK),
            "vehicle_id": vehicle_id,
            "boot_id": boot_id,
            "seq": seq,
            "sent_at_utc": format_utc(datetime.now(UTC)),
            "points": [track_point_dict(p) for p in points],
        }
    )


def status_payload(
    *,
    vehicle_id: str,
    boot_id: str,
    seq: int,
    online: bool,
    snapshot: Status | None,
    queue_depth: int | None,
    awaiting: Awaiting | None = None,
) -> bytes:
    """The vehicle's status message, from the recorder's snapshot when there is one;
    ``awaiting``: what waits for the office's receipt (sync.receipts)."""
    last_fix = None
    if snapshot is not None and snapshot.gps.lat_deg is not None:
        gps = snapshot.gps
        last_fix = {
            "lat_deg": gps.lat_deg,
            "lon_deg": gps.lon_deg,
            "fix_age_s": gps.fix_age_s,
            "mode": gps.mode,
        }
    return _dumps(
        {
            "schema": schema_tag(STATUS),
            "vehicle_id": vehicle_id,
            "boot_id": boot_id,
            "seq": seq,
            "sent_at_utc": format_utc(datetime.now(UTC)),
            "online": online,
            "recording": snapshot.recording if snapshot else None,
            "software_version": software_version,
            "model_id": (snapshot.model.model_id or None) if snapshot else None,
            "queue_depth": queue_depth,
            "last_fix": last_fix,
            "alerts": list(snapshot.alerts) if snapshot else [],
            "last_model_update": _last_model_update(snapshot),
            "awaiting_receipt": None
            if awaiting is None
            else {
                "findings": awaiting.findings,
                "images": awaiting.images,
                "oldest_age_s": awaiting.oldest_age_s,
                "office_silent_s": awaiting.office_silent_s,
            },
        }
    )


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def _last_model_update(snapshot: Status | None) -> dict[str, Any] | None:
    """The last package pushed from the office and what became of it; None before any."""
    if snapshot is None or snapshot.model.last_update_result is None:
        return None
    model = snapshot.model
    return {
        "model_id": model.last_update_model_id,
        "result": model.last_update_result,
        "reason": _cut(model.last_update_reason, MAX_REASON_CHARS),
        "activated": model.last_update_activated,
        "at_utc": model.last_update_at_utc,
    }
