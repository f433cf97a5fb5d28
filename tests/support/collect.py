"""The receiving side of the sync tests: an office receiver in this process, a plain
subscriber that records what arrives, and waiting for an office in another process."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config.mqtt import MqttConfig
from sync.office.receiver import OfficeReceiver
from sync.office.store import SqliteStore as OfficeStore
from sync.office.store_api import open_store

from support.broker import wait_until


class Office:
    """An office receiver in this process, storing into a temporary database."""

    def __init__(
        self,
        workdir: Path,
        cfg: MqttConfig,
        client_id: str = "office-test",
        db: str | None = None,
        **receiver_options: Any,
    ) -> None:
        """``db``: the store's ``--db`` (default: ``workdir/office.sqlite3``)."""
        self.store = open_store(db or workdir / "office.sqlite3", workdir / "images")
        self.receiver = OfficeReceiver(cfg, self.store, client_id=client_id, **receiver_options)

    def __enter__(self) -> Office:
        self.receiver.start()
        assert self.receiver.wait_connected(10), "office receiver did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
        self.store.close()


class Collector:
    """A plain paho subscriber that records every message in arrival order."""

    def __init__(self, port: int, topic: str = "roadpatrol/v1/#") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, dict[str, object], bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"collector-{port}", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "collector did not subscribe"

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        props = getattr(msg, "properties", None)
        meta: dict[str, object] = {
            "content_type": getattr(props, "ContentType", None),
            "user": dict(getattr(props, "UserProperty", []) or []),
        }
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), meta, bool(msg.retain)))  # type: ignore[attr-defined]

    def snapshot(self) -> list[tuple[str, bytes, dict[str, object], bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_until_office_subscribed(port: int, db: Path, timeout_s: float = 30) -> None:
    """Publish a probe status until an office receiver (another process) has stored it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sync.payloads import status_payload

    probe = status_payload(
        vehicle_id="probe", boot_id="b", seq=1, online=True, snapshot=None, queue_depth=0
    )
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5)
    raw.connect("127.0.0.1", port)
    raw.loop_start()

    def stored() -> bool:
        raw.publish("roadpatrol/v1/probe/status", probe, qos=1).wait_for_publish(5)
        if not db.exists():
            return False
        try:
            store = OfficeStore(db, None, read_only=True)
        except Exception:
            return False
        try:
            return bool(store.query("SELECT 1 FROM vehicle_status WHERE vehicle_id='probe'"))
        except Exception:
            return False
        finally:
            store.close()

    try:
        assert wait_until(stored, timeout_s, interval_s=0.3), "office receiver never subscribed"
    finally:
        raw.disconnect()
        raw.loop_stop()


def first_json_message(
    port: int,
    topic: str,
    accept: Callable[[dict[str, Any]], bool] = lambda doc: True,
    timeout_s: float = 20,
) -> dict[str, Any]:
    """The first JSON message on ``topic`` (retained or live) that ``accept`` takes."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    found: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with lock:
            if not found and accept(doc):
                found.append(doc)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert wait_until(lambda: bool(found), timeout_s), f"no matching message on {topic}"
    finally:
        client.disconnect()
        client.loop_stop()
    return found[0]
