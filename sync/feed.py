"""What the publisher sends next: outbox records turned into MQTT messages, most urgent first.

Order: findings (grade 3 first, then by grade, oldest first), then a track batch, then the
images of findings the broker already acknowledged. Whatever the ledger says is busy (in
flight, acknowledged but not yet marked, or parked after a refusal) is never fetched again.

Images are fetched from the outbox a batch ahead: the image query costs the same few
milliseconds for one row as for hundreds. A record waiting in that batch is not yet in the
ledger, so the outbox is not asked again until the batch is used up; a finding acknowledged
meanwhile drops the batch, so that its image takes its place in the grade order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from paho.mqtt.properties import Properties

from edge.outbox import Outbox, PendingImage
from edge.outbox.identity import FindingIdentities, FindingIdentity
from edge.privacy.anonymise import read_note
from edge.status import Status
from edge.wire.topics import Topics
from sync.ledger import Ledger, Sent
from sync.payloads import finding_payload, image_user_properties, status_payload, track_payload
from sync.wire_properties import PrepackedProperties, prepacked_properties

log = logging.getLogger("sync.publisher")
_T = TypeVar("_T")

IMAGE_BATCH = 256  # pending images fetched from the outbox at once


@dataclass(frozen=True, slots=True)
class Message:
    """One PUBLISH (QoS 1) and the outbox record(s) it carries."""

    topic: str
    payload: bytes
    properties: Properties
    sent: Sent
    retain: bool = False


class OutboxFeed:
    def __init__(
        self,
        outbox: Outbox,
        vehicle_id: str,
        boot_id: str,
        *,
        topic_prefix: str,
        track_batch_max: int,
        status_provider: Callable[[], Status] | None = None,
    ) -> None:
        self.outbox = outbox
        self.vehicle_id = vehicle_id
        self.boot_id = boot_id
        self.topic_prefix = topic_prefix
        self.track_batch_max = track_batch_max
        self.status_provider = status_provider
        self.topics = Topics(topic_prefix, vehicle_id)
        self._identities = FindingIdentities(outbox.db_path, vehicle_id)
        self._json_props = prepacked_properties("application/json", utf8=True)
        self._bare_image_props = prepacked_properties("image/jpeg")
        self._images: deque[PendingImage] = deque()  # fetched ahead, not yet handed over
        self._image_identities: dict[str, FindingIdentity] = {}
        self._track_seq = 0

    def messages(self, free: int, ledger: Ledger) -> Iterator[Message]:
        """Up to ``free`` messages in the order above; each one yielded is taken as handed."""
        handed = 0
        for row in self.outbox.pending_findings(free, exclude=ledger.busy("finding")):
            yield self._finding_message(row.finding_id, row.finding)
            handed += 1
        if handed < free and not ledger.busy("track"):
            points = self.outbox.pending_track(self.track_batch_max)
            if points:
                self._track_seq += 1
                payload = track_payload(self.vehicle_id, self.boot_id, self._track_seq, points)
                sent = Sent("track", tuple(p.id for p in points), len(payload))
                yield Message(self.topics.track, payload, self._json_props, sent)
                handed += 1
        fetched = False  # at most one image query per call, however many files fail to read
        while handed < free:
            if not self._images:
                if fetched:
                    return
                self._fetch_images(ledger)
                fetched = True
                if not self._images:
                    return
            image = self._images.popleft()
            try:
                jpeg = image.path.read_bytes()
            except OSError as exc:  # evicted since the query; the outbox notices next time
                log.warning("image of %s unreadable: %s", image.finding_id, exc)
                continue
            yield self._image_message(image.finding_id, jpeg)
            handed += 1

    def findings_acked(self) -> None:
        """Their images are due now and may outrank the batch fetched ahead: fetch again."""
        self.forget_fetched()

    def forget_fetched(self) -> None:
        self._images.clear()
        self._image_identities.clear()

    def _fetch_images(self, ledger: Ledger) -> None:
        self._images.extend(self.outbox.pending_images(IMAGE_BATCH, ledger.busy("image")))
        ids = [image.finding_id for image in self._images]
        self._image_identities = self._identities.get_many(ids)

    def _finding_message(self, finding_id: str, finding: dict[str, Any]) -> Message:
        identity = FindingIdentity(finding["vehicle_id"], finding["boot_id"], finding["seq"])
        self._identities.remember(finding_id, identity)
        payload = finding_payload(finding)
        topic = Topics(self.topic_prefix, identity.vehicle_id).finding
        return Message(
            topic, payload, self._json_props, Sent("finding", (finding_id,), len(payload))
        )

    def _image_message(self, finding_id: str, jpeg: bytes) -> Message:
        identity = self._image_identities.get(finding_id)
        props: PrepackedProperties
        if identity is None:  # unreadable record: the topic alone names the finding
            props = self._bare_image_props
            vehicle_id = self.vehicle_id
        else:
            vehicle_id = identity.vehicle_id
            user = image_user_properties(
                {"id": finding_id, "vehicle_id": vehicle_id,
                 "boot_id": identity.boot_id, "seq": identity.seq},
                read_note(jpeg),
            )  # fmt: skip
            props = prepacked_properties("image/jpeg", user)
        topic = Topics(self.topic_prefix, vehicle_id).image(finding_id)
        return Message(topic, jpeg, props, Sent("image", (finding_id,), len(jpeg)))

    # --- the retained status message -------------------------------------------------------

    def status_message(self, *, online: bool, seq: int) -> Message:
        payload = self.status_payload(online=online, seq=seq)
        sent = Sent("status", ("status",), len(payload))
        return Message(self.topics.status, payload, self._json_props, sent, retain=True)

    def status_payload(self, *, online: bool, seq: int) -> bytes:
        return status_payload(
            vehicle_id=self.vehicle_id,
            boot_id=self.boot_id,
            seq=seq,
            online=online,
            snapshot=_call_logged(self.status_provider, "status provider"),
            queue_depth=_call_logged(lambda: self.outbox.summary().pending, "outbox summary")
            if online
            else None,
            awaiting=_call_logged(self.outbox.awaiting_receipt, "outbox receipts")
            if online
            else None,
        )

    def close(self) -> None:
        self._identities.close()


def _call_logged(fn: Callable[[], _T] | None, what: str) -> _T | None:
    """The status is best effort: a failing source leaves its fields empty, never the link."""
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:
        log.warning("%s failed: %s", what, exc)
        return None
