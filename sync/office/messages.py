"""Each message from the fleet, checked and stored: the office receiver's message handler.

Everything a vehicle (or anyone able to publish) sends is untrusted: size-capped before parsing,
JSON-parsed strictly, validated against the payload schemas (edge.wire), and only validated ids
ever name an image file. A message is stored, or rejected with its reason; the receiver
(sync.office.receiver) acknowledges it to the broker only after that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.wire.ids import FINDING_ID_RE, VEHICLE_ID_RE
from edge.wire.validate import IMAGE_SCHEMA_TAGS, schema_errors
from sync.office.ownership import NotYours, Ownership
from sync.office.store_api import DATABASE_ERRORS, OfficeStore

log = logging.getLogger("sync.office.receiver")

MAX_JSON_BYTES = 256 * 1024
MAX_IMAGE_BYTES = 16 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
# Not acked: the broker delivers the message again.
STORE_FAILURES: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)


class Rejected(ValueError):
    """A message that is skipped: the reason says why, for the log."""


@dataclass
class ReceiverStats:
    received: int = 0
    findings: int = 0
    duplicates: int = 0
    images: int = 0
    track_points: int = 0
    statuses: int = 0
    rejected: int = 0
    store_failures: int = 0


def _reject_constant(name: str) -> Any:
    raise Rejected(f"JSON constant {name} is not allowed")


def _parse_json(payload: bytes) -> Any:
    if len(payload) > MAX_JSON_BYTES:
        raise Rejected(f"payload of {len(payload)} bytes exceeds {MAX_JSON_BYTES}")
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise Rejected(f"payload is not UTF-8: {exc.reason}") from None
    except RecursionError:
        raise Rejected("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or a Rejected constant
        raise Rejected(f"payload is not JSON: {exc}") from None


def _validated(kind: str, document: Any) -> dict[str, Any]:
    errors = schema_errors(kind, document)
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise Rejected(f"not a valid {kind} payload: {'; '.join(errors[:3])}{more}")
    assert isinstance(document, dict)
    return document


class MessageHandler:
    """Turns one MQTT message into store writes, or raises Rejected. No network in here."""

    def __init__(
        self,
        store: OfficeStore,
        topic_prefix: str = "roadpatrol/v1",
        on_stored: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.prefix_levels = topic_prefix.split("/")
        self.stats = ReceiverStats()
        self.ownership = Ownership(store)
        # (vehicle id, 'finding' | 'image', finding id), after the commit: the receipt.
        self.on_stored = on_stored or (lambda vehicle_id, kind, finding_id: None)

    def handle(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str | None = None,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> str:
        """Store the message; returns what it was ('finding', 'duplicate', 'image', ...)."""
        self.stats.received += 1
        levels = topic.split("/")
        n = len(self.prefix_levels)
        if levels[:n] != self.prefix_levels or len(levels) < n + 2:
            raise Rejected("topic outside '<prefix>/<vehicle id>/<kind>'")
        vehicle_id, kind, rest = levels[n], levels[n + 1], levels[n + 2 :]
        if not VEHICLE_ID_RE.match(vehicle_id):
            raise Rejected("vehicle id in the topic is not a valid id")
        if kind == "image" and len(rest) == 1:
            return self._image(vehicle_id, rest[0], payload, content_type, user_properties)
        if rest:
            raise Rejected(f"unexpected topic levels after {kind!r}")
        if kind == "receipt":  # our own receipts to the vehicle (MQTT 3.1.1 has no no-local)
            return "receipt"
        if kind == "finding":
            return self._finding(vehicle_id, payload)
        if kind == "track":
            return self._track(vehicle_id, payload)
        if kind == "status":
            return self._status(vehicle_id, payload)
        raise Rejected(f"unknown message kind {kind!r}")

    def _finding(self, vehicle_id: str, payload: bytes) -> str:
        doc = _validated("finding", _parse_json(payload))
        if doc["vehicle_id"] != vehicle_id:
            raise Rejected(f"finding of vehicle {doc['vehicle_id']!r} under another's topic")
        try:
            self.ownership.check_finding(vehicle_id, doc)
        except NotYours as exc:
            raise Rejected(str(exc)) from None
        new = self.store.add_finding(doc)
        self.on_stored(vehicle_id, "finding", doc["id"])
        if self.ownership.adopt(vehicle_id, doc["id"]):  # its image came first
            self.stats.images += 1
            self.on_stored(vehicle_id, "image", doc["id"])
        if new:
            self.stats.findings += 1
            return "finding"
        self.stats.duplicates += 1
        return "duplicate"

    def _image(
        self,
        vehicle_id: str,
        finding_id: str,
        payload: bytes,
        content_type: str | None,
        user_properties: list[tuple[str, str]] | None,
    ) -> str:
        if not FINDING_ID_RE.match(finding_id):
            raise Rejected("finding id in the image topic is not a UUID")
        if len(payload) > MAX_IMAGE_BYTES:
            raise Rejected(f"image of {len(payload)} bytes exceeds {MAX_IMAGE_BYTES}")
        if content_type is not None and content_type != "image/jpeg":
            raise Rejected(f"image content type {content_type!r}, expected 'image/jpeg'")
        if not payload.startswith(JPEG_MAGIC):
            raise Rejected("image payload is not a JPEG")
        if user_properties:
            props = dict(user_properties)
            if len(props) != len(user_properties):
                raise Rejected("image user properties repeat a name")
            if props.get("schema") in IMAGE_SCHEMA_TAGS:
                _validated("image", props)
                if props["finding_id"] != finding_id or props["vehicle_id"] != vehicle_id:
                    raise Rejected("image user properties disagree with its topic")
        try:
            verdict = self.ownership.image_verdict(vehicle_id, finding_id, payload)
            if verdict == "park":
                # Not receipted: only an image attached to its finding is stored for good.
                self.ownership.park(vehicle_id, finding_id, payload)
                return "parked"
        except NotYours as exc:
            raise Rejected(str(exc)) from None
        added = verdict == "store" and self.store.add_image(vehicle_id, finding_id, payload)
        # Its finding's image is in the office now (a conflicting copy keeps the first).
        self.on_stored(vehicle_id, "image", finding_id)
        if added:
            self.stats.images += 1
            return "image"
        self.stats.duplicates += 1
        return "duplicate"  # 'conflict' (other bytes) is logged by ownership, first kept

    def _track(self, vehicle_id: str, payload: bytes) -> str:
        doc = _validated("track", _parse_json(payload))
        if doc["vehicle_id"] != vehicle_id:
            raise Rejected(f"track of vehicle {doc['vehicle_id']!r} under another's topic")
        self.stats.track_points += self.store.add_track(vehicle_id, doc["points"])
        return "track"

    def _status(self, vehicle_id: str, payload: bytes) -> str:
        doc = _validated("status", _parse_json(payload))
        if doc["vehicle_id"] != vehicle_id:
            raise Rejected(f"status of vehicle {doc['vehicle_id']!r} under another's topic")
        self.store.set_status(vehicle_id, doc)
        self.stats.statuses += 1
        return "status"
