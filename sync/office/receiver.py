"""The office receiver: MQTT messages from the fleet into the office database.

Subscribes to ``<prefix>/+/#`` with a persistent session (clean start off, a session expiry),
so messages published while the receiver is down wait at the broker. Acknowledgements are
manual: a message is acked only after it is stored, or after it was judged malformed and
skipped, so a database failure makes the broker deliver it again instead of losing it.

Everything a vehicle (or anyone able to publish) sends is untrusted: size-capped before parsing,
JSON-parsed strictly, validated against the payload schemas, and only validated ids ever name
an image file.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.mqtt_config import MqttConfig
from sync.mqtt_client import Backoff, make_client, reason_text
from sync.office.ownership import NotYours, Ownership
from sync.office.store_api import DATABASE_ERRORS, OfficeStore
from sync.payloads import FINDING_ID_RE, IMAGE_SCHEMA_TAG, VEHICLE_ID_RE, schema_errors

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

    def __init__(self, store: OfficeStore, topic_prefix: str = "roadpatrol/v1") -> None:
        self.store = store
        self.prefix_levels = topic_prefix.split("/")
        self.stats = ReceiverStats()
        self.ownership = Ownership(store)

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
        if self.ownership.adopt(vehicle_id, doc["id"]):  # its image came first
            self.stats.images += 1
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
            if props.get("schema") == IMAGE_SCHEMA_TAG:
                _validated("image", props)
                if props["finding_id"] != finding_id or props["vehicle_id"] != vehicle_id:
                    raise Rejected("image user properties disagree with its topic")
        try:
            verdict = self.ownership.image_verdict(vehicle_id, finding_id, payload)
            if verdict == "park":
                self.ownership.park(vehicle_id, finding_id, payload)
                return "parked"
        except NotYours as exc:
            raise Rejected(str(exc)) from None
        if verdict == "store" and self.store.add_image(vehicle_id, finding_id, payload):
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
        shared_group: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.shared_group = shared_group
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.handler = MessageHandler(store, cfg.topic_prefix)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self.last_error: str | None = None
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
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            if self._client is not None:
                self._client.disconnect()
        self._thread.join(timeout_s)

    def wait_connected(self, timeout_s: float) -> bool:
        """Connected and subscribed."""
        return self._connected.wait(timeout_s)

    def _run(self) -> None:
        backoff = Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        while not self._stopping.is_set():
            client = make_client(self.cfg, self.client_id, clean_start=False)
            client.manual_ack_set(True)
            client.reconnect_delay_set(
                int(max(1, self.cfg.reconnect_min_s)), int(max(1, self.cfg.reconnect_max_s))
            )
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            with self._lock:
                if self._stopping.is_set():
                    return
                self._client = client
            if self.cfg.protocol == "5":
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry_s
                client.connect_async(
                    self.cfg.host, self.cfg.port, self.cfg.keepalive_s,
                    clean_start=False, properties=props,
                )  # fmt: skip
            else:
                client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
            try:
                client.loop_forever(retry_first_connection=True)
            except Exception as exc:  # a bug must not end the office's intake silently
                log.exception("receiver network loop failed: %s", exc)
            self._connected.clear()
            if not self._stopping.is_set():
                self._stopping.wait(backoff.next_delay_s())

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_text(reason_code)}"
            log.error("%s", self.last_error)
            return
        client.subscribe(self.topic_filter, qos=1)
        self.last_error = None
        log.info(
            "connected to %s:%d (session present: %s)",
            self.cfg.host, self.cfg.port, getattr(flags, "session_present", None),
        )  # fmt: skip

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
            log.warning("disconnected from broker: %s", reason_text(reason_code))

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
            client.disconnect()
            return
        except Exception:
            self.handler.stats.rejected += 1
            log.exception("skipped message on %r: unexpected error", (topic or "?")[:200])
        client.ack(message.mid, message.qos)
