"""The office receiver: MQTT messages from the fleet into the office database.

Subscribes to ``<prefix>/+/#`` with a persistent session (clean start off, a session expiry), so
messages published while the receiver is down wait at the broker. After each finding or image is
committed, its receipt goes back to the vehicle (sync.office.receipts). Acknowledgements are
manual: a message is acked only after it is stored, or after it was judged malformed and
skipped, so a database failure makes the broker deliver it again instead of losing it.

Everything a vehicle (or anyone able to publish) sends is untrusted: size-capped before parsing,
JSON-parsed strictly, validated against the payload schemas, and only validated ids ever name an
image file.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.backoff import Backoff
from edge.config.mqtt import MqttConfig
from edge.wire.ids import FINDING_ID_RE, VEHICLE_ID_RE
from edge.wire.validate import IMAGE_SCHEMA_TAGS, schema_errors
from sync.mqtt_client import connect, make_client, reason_text
from sync.office.ownership import NotYours, Ownership
from sync.office.receipts import ReceiptSender
from sync.office.store_api import DATABASE_ERRORS, OfficeStore

log = logging.getLogger("sync.office.receiver")

MAX_JSON_BYTES = 256 * 1024
MAX_IMAGE_BYTES = 16 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
# Not acked: the broker delivers the message again.
STORE_FAILURES: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)
SHARE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # no '/', '+', '#' in a share name


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


class OfficeReceiver:
    """Runs the subscription on its own thread until :meth:`stop`."""

    def __init__(
        self,
        cfg: MqttConfig,
        store: OfficeStore,
        *,
        client_id: str = "roadpatrol-office",
        session_expiry_s: int = 7 * 24 * 3600,
        receipt_batch_s: float = 0.2,
        shared_group: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.shared_group = shared_group
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.receipts = ReceiptSender(
            cfg.topic_prefix, lambda: self._client, batch_s=receipt_batch_s
        )
        self.handler = MessageHandler(store, cfg.topic_prefix, self.receipts.stored)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self.last_error: str | None = None
        self._attempts = 0  # connection attempts since the last success, for the log
        self._backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self._thread = threading.Thread(target=self._run, name="office-receiver", daemon=True)

    @property
    def stats(self) -> ReceiverStats:
        return self.handler.stats

    @property
    def topic_filter(self) -> str:
        """The fleet's topics; in a shared group the broker hands each message to one member."""
        feed = f"{self.cfg.topic_prefix}/+/#"
        return feed if self.shared_group is None else f"$share/{self.shared_group}/{feed}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self.receipts.start()
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.receipts.stop()  # what is stored gets its receipt before we go
        self._stopping.set()
        with self._lock:
            if self._client is not None:
                self._client.disconnect()
        self._thread.join(timeout_s)

    def wait_connected(self, timeout_s: float) -> bool:
        """Connected and subscribed."""
        return self._connected.wait(timeout_s)

    def _run(self) -> None:
        """Connect, serve until the connection ends, wait, connect again: each attempt and its
        outcome in the log (paho's own reconnect loop retries silently)."""
        while not self._stopping.is_set():
            self._attempts += 1
            client = self._connect(self._attempts)
            if client is not None:
                self._serve(client)
            self._connected.clear()
            if self._stopping.is_set():
                return
            delay = self._backoff.next_delay_s()
            log.info(
                "reconnecting to %s:%d in %.1f s (attempt %d)",
                self.cfg.host, self.cfg.port, delay, self._attempts + 1,
            )  # fmt: skip
            self._stopping.wait(delay)

    def _connect(self, attempt: int) -> mqtt.Client | None:
        """One TCP/TLS connect and CONNECT; the CONNACK arrives in :meth:`_serve`."""
        where = f"{self.cfg.host}:{self.cfg.port}"
        # One client for every attempt: paho keeps the receipts it has not had PUBACKed for
        # yet in the client and sends them again on the next CONNACK; a new client per
        # attempt would drop them (the vehicle would then wait out its receipt timeout).
        client = self._client
        if client is None:
            try:
                client = self._new_client()
            except ValueError as exc:  # a certificate or password file that cannot be read
                self.last_error = str(exc)
                log.error("attempt %d to connect to %s failed: %s", attempt, where, exc)
                return None
        with self._lock:
            if self._stopping.is_set():
                return None
            self._client = client
        log.info("connecting to %s (attempt %d)", where, attempt)
        try:
            connect(client, self.cfg, clean_start=False, session_expiry_s=self.session_expiry_s)
        except (OSError, ssl.SSLError) as exc:
            self.last_error = f"cannot connect to {where}: {exc}"
            log.warning("attempt %d to connect to %s failed: %s", attempt, where, exc)
            return None
        return client

    def _new_client(self) -> mqtt.Client:
        client = make_client(self.cfg, self.client_id, clean_start=False)
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _serve(self, client: mqtt.Client) -> None:
        while not self._stopping.is_set():
            try:
                rc = client.loop(timeout=1.0)
            except Exception as exc:  # a bug must not end the office's intake silently
                log.exception("receiver network loop failed: %s", exc)
                return
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_text(reason_code)}"
            log.error("attempt %d: %s", self._attempts, self.last_error)
            return
        if client.protocol == mqtt.MQTTv5 and self.shared_group is None:
            # Not our own receipts back. MQTT 5 forbids No Local on a shared subscription:
            # there the handler skips receipts, as under 3.1.1.
            client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1, noLocal=True))
        else:
            client.subscribe(self.topic_filter, qos=1)
        self.last_error = None
        log.info(
            "connected to %s:%d (attempt %d, session present: %s)",
            self.cfg.host, self.cfg.port, self._attempts, getattr(flags, "session_present", None),
        )  # fmt: skip
        self._backoff.reset()
        self._attempts = 0  # the next outage counts its attempts from 1

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any
    ) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            self.last_error = f"broker refused the subscription: {reason_text(refused[0])}"
            log.error("%s", self.last_error)
            return
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from broker: %s; reconnecting", reason_text(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = None
        props = getattr(message, "properties", None)
        try:
            if topic is None:
                raise Rejected("topic is not UTF-8")
            self.handler.handle(
                topic,
                bytes(message.payload),
                content_type=getattr(props, "ContentType", None),
                user_properties=getattr(props, "UserProperty", None),
            )
        except Rejected as exc:
            self.handler.stats.rejected += 1
            log.warning("skipped message on %r: %s", (topic or "?")[:200], exc)
        except STORE_FAILURES as exc:
            # Not acked: the broker delivers it again after we reconnect.
            self.handler.stats.store_failures += 1
            self.last_error = f"cannot store message: {exc}"
            log.error("cannot store message on %r: %s; reconnecting", topic, exc)
            self.receipts.flush()  # what was stored before it still gets its receipt
            client.disconnect()
            return
        except Exception:
            self.handler.stats.rejected += 1
            log.exception("skipped message on %r: unexpected error", (topic or "?")[:200])
        client.ack(message.mid, message.qos)
