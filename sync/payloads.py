"""MQTT topics and payloads: the public contract between vehicles and the office.

Every JSON payload starts with ``schema: {name, version}``; its JSON Schema is committed in
``edge/wire/schemas/<kind>.schema.json``. Images are raw JPEG bytes whose MQTT 5 user properties
carry the same identifying fields (schema, finding id, vehicle id, boot id, seq).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from edge import __version__ as software_version
from edge.outbox import TrackPoint
from edge.outbox.receipts import Awaiting
from edge.status import Status
from edge.wire.serialize import format_utc

FINDING = ("roadpatrol.finding", 1)
TRACK = ("roadpatrol.track", 1)
STATUS = ("roadpatrol.status", 2)  # v2: last_model_update
IMAGE_SCHEMA_TAG = "roadpatrol.image/2"  # v2: anonymised, anonymiser (optional)
IMAGE_SCHEMA_TAGS = ("roadpatrol.image/1", IMAGE_SCHEMA_TAG)  # what the office validates
MAX_REASON_CHARS = 1000  # a refusal's reason in the status message (the schema's maxLength)
SCHEMA_KINDS = ("finding", "image", "track", "status", "receipt")

# A topic level we build from data: never a wildcard, separator, or '.'/'..' path component.
VEHICLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FINDING_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    vehicle_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.vehicle_id}"

    @property
    def finding(self) -> str:
        return f"{self.base}/finding"

    def image(self, finding_id: str) -> str:
        return f"{self.base}/image/{finding_id}"

    @property
    def track(self) -> str:
        return f"{self.base}/track"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def receipt(self) -> str:
        """The office's receipts to this vehicle (sync.receipts)."""
        return f"{self.base}/receipt"


def check_vehicle_id(vehicle_id: str) -> str:
    if not VEHICLE_ID_RE.match(vehicle_id):
        raise ValueError(
            f"vehicle id {vehicle_id!r} cannot be an MQTT topic level: use 1-64 letters, "
            "digits, '_', '.', '-', starting with a letter or digit"
        )
    return vehicle_id


def _tag(schema: tuple[str, int]) -> dict[str, Any]:
    return {"name": schema[0], "version": schema[1]}


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def finding_payload(finding: dict[str, Any], *, has_image: bool | None = None) -> bytes:
    """The finding's JSON form (edge.wire.serialize.finding_to_dict) tagged with its schema."""
    body: dict[str, Any] = {"schema": _tag(FINDING), **finding}
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
            "schema": _tag(TRACK),
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
            "schema": _tag(STATUS),
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


@cache
def load_schema(kind: str) -> dict[str, Any]:
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"no payload schema {kind!r}; known: {', '.join(SCHEMA_KINDS)}")
    text = resources.files("edge.wire.schemas").joinpath(f"{kind}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(kind: str, document: Any) -> list[str]:
    """Every way ``document`` breaks the ``kind`` schema, as 'path: message' lines."""
    found = []
    for error in sorted(validator(kind).iter_errors(document), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        found.append(f"{where}: {message}")
    return found
