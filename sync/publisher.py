"""Store-and-forward: the outbox to the broker over MQTT QoS 1.

The outbox is the truth. A record is marked sent only when its PUBACK arrives with a success
reason code; everything else (a lost link, a half-open one, a refusal, a crash) leaves it
pending, and it is sent again later. One thread owns the paho client and runs its network loop
itself (no paho thread), so the outbox, the ledger and the client are touched from one place;
``on_publish`` only appends to a queue, as it runs under paho's locks.

Every connection uses a new paho client with a clean start: the broker keeps no session for
us and paho holds no message from an earlier connection, so after a reconnect the only
source of resends is the outbox itself and no record is ever handed to paho twice while it
still holds it. The office drops the rare duplicate (a PUBACK lost with the link) by finding id.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from edge.ids import boot_id as this_boot_id
from edge.mqtt_config import MqttConfig
from edge.outbox import Outbox
from edge.serialize import format_utc
from edge.status import LinkStatus, Status
from sync.identity import FindingIdentities, FindingIdentity
from sync.ledger import Ledger, Sent
from sync.mqtt_client import Backoff, connect, make_client, publish_properties, reason_text
from sync.payloads import (
    Topics,
    check_vehicle_id,
    finding_payload,
    image_user_properties,
    status_payload,
    track_payload,
)

log = logging.getLogger("sync.publisher")
_T = TypeVar("_T")


@dataclass
class PublisherCounters:
    findings_sent: int = 0  # marked sent in the outbox
    images_sent: int = 0
    track_points_sent: int = 0
    bytes_acked: int = 0
    refused: int = 0
    connects: int = 0
    connect_failures: int = 0
    half_open_drops: int = 0


class Publisher:
    """Sends the outbox to the broker from its own thread: ``start()`` … ``stop()``."""

    def __init__(
        self,
        cfg: MqttConfig,
        outbox: Outbox,
        vehicle_id: str,
        status_provider: Callable[[], Status] | None = None,
        *,
        publish_status: bool = True,
        client_id: str | None = None,
        idle_poll_s: float = 0.5,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.vehicle_id = check_vehicle_id(vehicle_id)
        self.status_provider = status_provider
        self.publish_status = publish_status
        self.client_id = client_id or cfg.effective_client_id(vehicle_id)
        self.idle_poll_s = idle_poll_s
        self.boot_id = this_boot_id()
        self.counters = PublisherCounters()
        self._topics = Topics(cfg.topic_prefix, vehicle_id)
        self._identities = FindingIdentities(outbox.db_path, vehicle_id)
        self._backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self._refusal_backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self._link = LinkStatus(enabled=cfg.enabled, offline_since_utc=_now())
        self._link_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._idle = threading.Event()  # connected, and the last look found nothing to send
        self._thread: threading.Thread | None = None
        # Owned by the publisher thread from here on.
        self._ledger = Ledger(outbox)
        self._results: deque[tuple[int, Any]] = deque()  # (mid, reason code) from on_publish
        self._client: mqtt.Client | None = None
        self._ready = False  # CONNACK accepted
        self._drop_reason: str | None = None  # set by callbacks, acted on by the loop
        self._refusal: str | None = None  # the latest refusal, until records get through
        self._connect_started = self._next_connect = self._next_poll = 0.0
        self._next_status = self._pause_until = self._last_ack = 0.0
        self._status_seq = self._track_seq = 0
        self._receive_max = 20  # mosquitto's default, until a CONNACK says otherwise
        self._json_props = publish_properties("application/json", utf8=True)

    # --- the public face -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """New records in the outbox: look now instead of at the next poll."""
        self._wake.set()

    def link_status(self) -> LinkStatus:
        with self._link_lock:
            return self._link

    def wait_idle(self, timeout_s: float) -> bool:
        """True once a look at the outbox found nothing to send and nothing is in flight."""
        return self._idle.wait(timeout_s)

    @property
    def in_flight(self) -> int:
        return len(self._ledger.inflight)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # the link must come back whatever went wrong
                log.exception("publisher error: %r", exc)
                self._drop(f"publisher error: {exc!r}")
        try:
            self._shutdown()
        except Exception:
            log.exception("publisher shutdown failed")
        self._identities.close()

    def _step(self) -> None:
        now = time.monotonic()
        if self._client is None:
            if now < self._next_connect:
                self._stop.wait(min(self._next_connect - now, 0.5))
            else:
                self._connect()
            return
        busy = self._ledger.inflight or self._ledger.acks_waiting
        rc = self._client.loop(timeout=0.01 if busy else 0.2 if now < self._next_poll else 0.05)
        self._process_results()
        if self._drop_reason is not None:
            self._drop(self._drop_reason)
        elif rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop(f"connection lost: {mqtt.error_string(rc)}")
        elif not self._ready:
            if time.monotonic() - self._connect_started > self.cfg.connect_timeout_s:
                self._drop(f"no CONNACK within {self.cfg.connect_timeout_s:g} s")
        elif not self._check_stall() and self._fill_window():
            self._maybe_publish_status()

    def _connect(self) -> None:
        self._drop_reason = None
        self._ready = False
        try:
            client = make_client(self.cfg, self.client_id, clean_start=True)
        except ValueError as exc:  # unreadable credentials or certificates
            self._fail(str(exc))
            return
        # On the wire at once: the broker's Receive Maximum as of the last CONNACK (paho
        # ignores it, and cannot change it once connected); mosquitto's default before that.
        client.max_inflight_messages_set(min(self._receive_max, self.cfg.inflight_window))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if self.publish_status:
            client.will_set(self._topics.status, self._status(online=False, seq=0), 1, True)
        self._connect_started = time.monotonic()
        try:
            connect(client, self.cfg, clean_start=True)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._fail(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}")
            return
        self._client = client

    def _fail(self, reason: str) -> None:
        if self._refusal is not None:
            # Some brokers close the connection right after refusing: keep the cause in view.
            reason = f"{self._refusal}; then {reason}"
        self.counters.connect_failures += 1
        delay = self._backoff.next_delay_s()
        self._next_connect = time.monotonic() + delay
        self._set_link(connected=False, error=reason)
        log.warning("%s; retrying in %.1f s", reason, delay)

    def _on_connect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if client is not self._client:
            return
        if rc.is_failure:
            self._drop_reason = f"broker refused the connection: {reason_text(rc)}"
            return
        # Records handed over beyond the broker's Receive Maximum wait in paho's queue and go
        # out the moment a PUBACK frees a slot, which keeps the link busy between our refills.
        if client.protocol == mqtt.MQTTv5:
            receive_max = getattr(props, "ReceiveMaximum", 65535)
            if receive_max < client.max_inflight_messages:
                self._receive_max = receive_max
                self._drop_reason = f"broker takes {receive_max} in flight; reconnecting"
                return
            self._receive_max = receive_max
        self._ready = True
        self._backoff.reset()
        self._next_status = self._next_poll = 0.0
        self._last_ack = time.monotonic()
        self.counters.connects += 1
        self._set_link(connected=True, error=None)
        log.info("connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.client_id)

    def _on_disconnect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if client is self._client and self._ready and rc.is_failure:
            self._drop_reason = f"connection closed: {reason_text(rc)}"

    def _on_publish(self, client: mqtt.Client, u: Any, mid: int, rc: Any, props: Any) -> None:
        # Runs under paho's locks: hand over, nothing else.
        if client is self._client:
            self._results.append((mid, rc))

    def _drop(self, reason: str) -> None:
        """Abandon the connection; its unacknowledged records stay pending in the outbox."""
        try:
            self._process_results()
            self._mark(force=True)
        finally:
            self._ledger.forget_acks()
            self._ledger.forget_inflight()
        client, self._client = self._client, None
        self._ready = False
        self._idle.clear()
        if client is not None:
            try:
                client.disconnect()
                sock = client.socket()
                if sock is not None:
                    sock.close()
            except Exception as exc:  # the socket may already be gone
                log.debug("closing the old connection: %s", exc)
        self._fail(reason)

    # --- acknowledgements -----------------------------------------------------------------

    def _process_results(self) -> None:
        while self._results:
            mid, rc = self._results.popleft()
            sent = self._ledger.acknowledged(mid, ok=not rc.is_failure)
            if sent is None:
                continue
            self._last_ack = time.monotonic()
            self._next_poll = 0.0
            if rc.is_failure:
                self._on_refused(sent, rc)
            else:
                self.counters.bytes_acked += sent.nbytes
        self._mark(force=False)

    def _mark(self, *, force: bool) -> None:
        marked = self._ledger.flush(force=force)
        self.counters.findings_sent += len(marked.findings)
        self.counters.images_sent += len(marked.images)
        self.counters.track_points_sent += len(marked.track_points)
        if marked.findings or marked.images:
            self._next_poll = 0.0  # acked findings may have images to send now
            self._refusal_backoff.reset()
            self._refusal = None
            with self._link_lock:
                last = (marked.images or marked.findings)[-1]
                self._link = replace(self._link, last_acked_id=last)

    def _on_refused(self, sent: Sent, rc: Any) -> None:
        """The broker said no (e.g. not authorised): keep the record, retry it later."""
        self.counters.refused += 1
        delay = self._refusal_backoff.next_delay_s()
        self._pause_until = time.monotonic() + delay
        self._ledger.park(sent, self._pause_until)
        self._refusal = f"broker refused {sent.kind} {sent.keys[0]}: {reason_text(rc)}"
        self._set_link(connected=True, error=self._refusal)
        log.error("%s; kept in the outbox, retrying in %.1f s", self._refusal, delay)

    def _check_stall(self) -> bool:
        """No PUBACK for too long while records wait: the link is half-open. Drop it."""
        oldest = self._ledger.oldest_handed_at()
        if oldest is None:
            return False
        stalled_s = time.monotonic() - max(oldest, self._last_ack)
        if stalled_s <= self.cfg.puback_timeout_s:
            return False
        self.counters.half_open_drops += 1
        self._drop(f"no PUBACK for {stalled_s:.0f} s: link half-open, reconnecting")
        return True

    # --- sending --------------------------------------------------------------------------

    def _fill_window(self) -> bool:
        """Hand paho the next records, most urgent first; False if the connection dropped."""
        now = time.monotonic()
        free = self.cfg.inflight_window - len(self._ledger.inflight)
        if free <= 0 or now < self._pause_until:
            return True
        if self._ledger.inflight and free < max(1, self.cfg.inflight_window // 4):
            return True  # wait for a few more acks: one query for several slots
        if now < self._next_poll and not self._wake.is_set():
            return True
        self._wake.clear()
        handed = 0
        for row in self.outbox.pending_findings(free, exclude=self._ledger.busy("finding")):
            if not self._send_finding(row.finding_id, row.finding):
                return False
            handed += 1
        if handed < free and not self._ledger.busy("track"):
            points = self.outbox.pending_track(self.cfg.track_batch_max)
            if points:
                self._track_seq += 1
                payload = track_payload(self.vehicle_id, self.boot_id, self._track_seq, points)
                sent = Sent("track", tuple(p.id for p in points), len(payload))
                if not self._send(self._topics.track, payload, self._json_props, sent):
                    return False
                handed += 1
        if handed < free:
            busy = self._ledger.busy("image")
            for image in self.outbox.pending_images(free - handed, exclude=busy):
                try:
                    jpeg = image.path.read_bytes()
                except OSError as exc:  # evicted since the query; the outbox notices next time
                    log.warning("image of %s unreadable: %s", image.finding_id, exc)
                    continue
                if not self._send_image(image.finding_id, jpeg):
                    return False
                handed += 1
        if handed == 0:
            self._next_poll = now + self.idle_poll_s
            if not self._ledger.inflight and not self._ledger.acks_waiting:
                self._idle.set()
        else:
            self._idle.clear()
        return True

    def _send_finding(self, finding_id: str, finding: dict[str, Any]) -> bool:
        identity = FindingIdentity(finding["vehicle_id"], finding["boot_id"], finding["seq"])
        self._identities.remember(finding_id, identity)
        payload = finding_payload(finding)
        topic = Topics(self.cfg.topic_prefix, identity.vehicle_id).finding
        sent = Sent("finding", (finding_id,), len(payload))
        return self._send(topic, payload, self._json_props, sent)

    def _send_image(self, finding_id: str, jpeg: bytes) -> bool:
        identity = self._identities.get(finding_id)
        if identity is None:  # unreadable record: the topic alone names the finding
            props = publish_properties("image/jpeg")
            vehicle_id = self.vehicle_id
        else:
            vehicle_id = identity.vehicle_id
            user = image_user_properties(
                {"id": finding_id, "vehicle_id": vehicle_id,
                 "boot_id": identity.boot_id, "seq": identity.seq}
            )  # fmt: skip
            props = publish_properties("image/jpeg", user)
        topic = Topics(self.cfg.topic_prefix, vehicle_id).image(finding_id)
        return self._send(topic, jpeg, props, Sent("image", (finding_id,), len(jpeg)))

    def _send(
        self, topic: str, payload: bytes, props: Any, sent: Sent, retain: bool = False
    ) -> bool:
        assert self._client is not None
        if self._client.protocol != mqtt.MQTTv5:
            props = None
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop(f"publish failed: {mqtt.error_string(info.rc)}")
            return False
        self._ledger.handed(info.mid, sent)
        return True

    # --- status ---------------------------------------------------------------------------

    def _maybe_publish_status(self) -> None:
        now = time.monotonic()
        if not self.publish_status or now < self._next_status:
            return
        self._next_status = now + self.cfg.status_interval_s
        self._publish_status(online=True)

    def _publish_status(self, *, online: bool) -> bool:
        self._status_seq += 1
        payload = self._status(online=online, seq=self._status_seq)
        sent = Sent("status", ("status",), len(payload))
        return self._send(self._topics.status, payload, self._json_props, sent, retain=True)

    def _status(self, *, online: bool, seq: int) -> bytes:
        return status_payload(
            vehicle_id=self.vehicle_id,
            boot_id=self.boot_id,
            seq=seq,
            online=online,
            snapshot=_call_logged(self.status_provider, "status provider"),
            queue_depth=_call_logged(lambda: self.outbox.summary().pending, "outbox summary")
            if online
            else None,
        )

    def _shutdown(self) -> None:
        """Say offline (retained), let the last PUBACKs in, and disconnect cleanly."""
        if self._client is None or not self._ready:
            if self._client is not None:
                self._drop("stopped")
            return
        deadline = time.monotonic() + 2.0
        if self.publish_status:
            self._publish_status(online=False)
        while self._client is not None and self._ledger.inflight:
            if time.monotonic() > deadline or self._client.loop(timeout=0.05):
                break
            self._process_results()
        self._process_results()
        self._mark(force=True)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop(timeout=0.1)
            self._client = None
        self._set_link(connected=False, error=None)

    def _set_link(self, *, connected: bool, error: str | None) -> None:
        with self._link_lock:
            old = self._link
            offline_since = old.offline_since_utc
            if connected:
                offline_since = None
            elif old.connected or offline_since is None:
                offline_since = _now()
            self._link = LinkStatus(
                enabled=self.cfg.enabled,
                connected=connected,
                offline_since_utc=offline_since,
                last_acked_id=old.last_acked_id,
                last_error=error,
            )


def _call_logged(fn: Callable[[], _T] | None, what: str) -> _T | None:
    """The status is best effort: a failing source leaves its fields empty, never the link."""
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:
        log.warning("%s failed: %s", what, exc)
        return None


def _now() -> str:
    return format_utc(datetime.now(UTC))
