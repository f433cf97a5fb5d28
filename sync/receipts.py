"""The office's receipts, on the vehicle: only a receipt ends a record's delivery.

A broker acknowledges a PUBLISH whether or not anyone will ever read it (no subscriber yet, an
expired office session, a broker without persistence restarted), so the publisher's PUBACK only
moves a record to "awaiting the office's receipt". The office publishes a receipt on
``<prefix>/<vehicle>/receipt`` (``roadpatrol.receipt`` v1, ``schemas/receipt.schema.json``)
after it committed the records to its database; the :class:`ReceiptListener` marks them
receipted in the outbox (edge.outbox.receipts). What gets no receipt in time is sent again.

The listener is a client of its own beside the publisher, because the publisher connects with a
clean start on purpose (sync.publisher): the recorder's listener keeps a persistent session
(clean start off, a session expiry), so receipts published while the vehicle is off the air wait
at the broker; the re-send after the timeout covers a session the broker lost. A receipt is
acknowledged to the broker only once the outbox committed it (manual acks), so a crash in
between only means the broker delivers it again.

A receipt is untrusted input: size-capped, parsed strictly, validated against its schema, for
this vehicle only (another vehicle's receipt, or an id unknown here, changes nothing). That only
the office can publish on a vehicle's receipt topic is the broker ACL's job (sync/README.md).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config.mqtt import MqttConfig
from edge.outbox import Outbox
from edge.wire.serialize import format_utc
from edge.wire.topics import Topics
from edge.wire.validate import schema_errors
from sync.mqtt_client import make_client, reason_text

log = logging.getLogger("sync.receipts")

RECEIPT = ("roadpatrol.receipt", 1)
MAX_RECEIPT_BYTES = 128 * 1024
MAX_IDS = 1000  # per list in one receipt (the schema's maxItems)
SESSION_EXPIRY_S = 7 * 24 * 3600


def receipt_payload(
    vehicle_id: str, office_boot_id: str, seq: int, findings: list[str], images: list[str]
) -> bytes:
    doc = {
        "schema": {"name": RECEIPT[0], "version": RECEIPT[1]},
        "vehicle_id": vehicle_id,
        "office_boot_id": office_boot_id,
        "seq": seq,
        "sent_at_utc": format_utc(datetime.now(UTC)),
        "findings": findings,
        "images": images,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_receipt(payload: bytes, vehicle_id: str) -> tuple[list[str], list[str]]:
    """(finding ids, image ids) of a valid receipt for ``vehicle_id``; ValueError says why not."""
    if len(payload) > MAX_RECEIPT_BYTES:
        raise ValueError(f"receipt of {len(payload)} bytes exceeds {MAX_RECEIPT_BYTES}")
    try:
        doc: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"receipt is not JSON: {exc}") from None
    errors = schema_errors("receipt", doc)
    if errors:
        raise ValueError(f"not a valid receipt: {'; '.join(errors[:3])}")
    if doc["vehicle_id"] != vehicle_id:
        raise ValueError(f"receipt for vehicle {doc['vehicle_id']!r}, not this one")
    return list(doc["findings"]), list(doc["images"])


@dataclass
class ReceiptStats:
    received: int = 0
    findings: int = 0  # newly receipted in the outbox
    images: int = 0
    ignored: int = 0  # malformed, or for another vehicle
    unmatched_ids: int = 0  # ids unknown here or receipted before


class ReceiptListener:
    """Subscribes to this vehicle's receipt topic on its own thread: ``start()`` … ``stop()``.

    ``persistent``: keep the broker session between connections (the recorder); a one-off
    ``sync drain`` uses a clean one, so that it leaves no session behind at the broker.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        outbox: Outbox,
        vehicle_id: str,
        *,
        client_id: str,
        persistent: bool,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.vehicle_id = vehicle_id
        self.client_id = client_id
        self.persistent = persistent
        self.topic = Topics(cfg.topic_prefix, vehicle_id).receipt
        self.stats = ReceiptStats()
        self.last_error: str | None = None
        self.applied = threading.Condition()  # notified after each receipt is committed
        self._subscribed = threading.Event()
        self._client: mqtt.Client | None = None

    def start(self) -> None:
        try:
            client = make_client(self.cfg, self.client_id, clean_start=not self.persistent)
        except ValueError as exc:  # unreadable credentials: the publisher reports the same
            self.last_error = str(exc)
            log.error("receipts: %s", exc)
            return
        client.reconnect_delay_set(
            int(max(1, self.cfg.reconnect_min_s)), int(max(1, self.cfg.reconnect_max_s))
        )
        client.manual_ack_set(True)  # acked once the outbox committed it
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = None
        if client.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S if self.persistent else 0
        kwargs: dict[str, Any] = {}
        if client.protocol == mqtt.MQTTv5:
            kwargs = {"clean_start": not self.persistent, "properties": props}
        client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, **kwargs)
        client.loop_start()  # paho's thread: reconnects by itself
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def wait_subscribed(self, timeout_s: float) -> bool:
        return self._subscribed.wait(timeout_s)

    def _on_connect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused the receipts connection: {reason_text(rc)}"
            log.error("%s", self.last_error)
            return
        # Every time: a broker that lost its state (no persistence) forgot the subscription.
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, u: Any, mid: int, codes: Any, props: Any) -> None:
        refused = [rc for rc in codes if rc.is_failure]
        if refused:
            self.last_error = f"broker refused the receipt subscription: {reason_text(refused[0])}"
            log.error("%s", self.last_error)
            return
        self.last_error = None
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self._subscribed.clear()

    def _on_message(self, client: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        try:
            findings, images = parse_receipt(bytes(message.payload), self.vehicle_id)
        except ValueError as exc:
            self.stats.ignored += 1
            log.warning("receipts: ignored a message on %s: %s", self.topic, exc)
            client.ack(message.mid, message.qos)
            self._notify()
            return
        try:
            done_f, done_i = self.outbox.mark_receipted(findings, images)
        except Exception as exc:  # a failing disk: not acknowledged, so delivered again later
            self.last_error = f"cannot store a receipt: {exc}"
            log.error("receipts: %s", self.last_error)
            return
        client.ack(message.mid, message.qos)
        self.stats.findings += done_f
        self.stats.images += done_i
        self.stats.unmatched_ids += len(findings) + len(images) - done_f - done_i
        self._notify()

    def _notify(self) -> None:
        with self.applied:
            self.applied.notify_all()


class Requeue:
    """Paces the publisher's look for records the office has not receipted in time."""

    def __init__(self, cfg: MqttConfig, outbox: Outbox) -> None:
        self.timeout_s = cfg.receipt_timeout_s
        self.cap_s = cfg.receipt_max_wait_s
        self.outbox = outbox
        # Often enough that a record goes again soon after its timeout, never a busy loop.
        self.every_s = min(max(self.timeout_s / 4, 0.05), 10.0)
        self._next = 0.0

    def run_if_due(self, now: float) -> bool:
        """True when records went back to pending (to be sent again now)."""
        if now < self._next:
            return False
        self._next = now + self.every_s
        try:
            findings, images = self.outbox.requeue_unreceipted(self.timeout_s, self.cap_s)
        except Exception as exc:  # a busy disk: look again next time
            log.warning("receipts: looking for records without a receipt failed: %s", exc)
            return False
        return bool(findings or images)
