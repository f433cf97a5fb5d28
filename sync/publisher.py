"""Store-and-forward: the outbox to the broker over MQTT QoS 1.

The outbox is the truth. A record is marked sent (acknowledged by the broker, now awaiting the
office's receipt: sync.receipts) only when its PUBACK arrives with a success reason code;
everything else (a lost link, a half-open one, a refusal, a crash) leaves it pending, and it is
sent again later, as is a sent record the office did not receipt within the receipt timeout. One
thread owns the paho client and runs its network loop itself (no paho thread), so the outbox,
the ledger and the client are touched from one place; ``on_publish`` only appends to a queue, as
it runs under paho's locks.

Every connection uses a new paho client with a clean start: the broker keeps no session for us
and paho holds no message from an earlier connection, so after a reconnect the only source of
resends is the outbox itself and no record is ever handed to paho twice while it still holds it.
The office drops the rare duplicate (a PUBACK lost with the link) by finding id.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge.backoff import Backoff
from edge.config.mqtt import MqttConfig
from edge.errors import log_failure
from edge.outbox import Outbox
from edge.status import LinkStatus, Status
from edge.waker import SelectWaker
from edge.wire.ids import boot_id as this_boot_id
from edge.wire.ids import check_vehicle_id
from sync.acks import Acknowledgements, PublisherCounters
from sync.feed import Message, OutboxFeed
from sync.ledger import Ledger, Marked
from sync.link import LinkState, LinkTracker
from sync.mqtt_client import connect, make_client, reason_text
from sync.receipts import Requeue

log = logging.getLogger("sync.publisher")


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
        self._feed = OutboxFeed(
            outbox,
            self.vehicle_id,
            self.boot_id,
            topic_prefix=cfg.topic_prefix,
            track_batch_max=cfg.track_batch_max,
            status_provider=status_provider,
        )
        self._backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        refusal_backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self._link = LinkTracker(enabled=cfg.enabled)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._nudge = SelectWaker()  # cuts the idle network wait short for wake() and stop()
        self._idle = threading.Event()  # connected, and the last look found nothing to send
        self._thread: threading.Thread | None = None
        # Owned by the publisher thread from here on.
        self._ledger = Ledger(outbox)
        self._acks = Acknowledgements(self._ledger, self.counters, self._link, refusal_backoff)
        self._client: mqtt.Client | None = None
        self._state = LinkState.OFFLINE  # no client until the first connect attempt
        self._drop_reason: str | None = None  # set by callbacks, acted on by the loop
        self._connect_started = self._next_connect = self._next_poll = 0.0
        self._next_status = 0.0
        self._status_seq = 0
        self._receive_max = 20  # mosquitto's default, until a CONNACK says otherwise
        self._requeue = Requeue(cfg, outbox)  # what the office did not receipt goes again

    # --- the public face -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """New records in the outbox: look now instead of at the next poll."""
        self._wake.set()
        self._nudge.set()

    def link_status(self) -> LinkStatus:
        return self._link.snapshot()

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
                log_failure(log, "publisher error")
                self._drop(f"publisher error: {exc!r}")
        try:
            self._shutdown()
        except Exception:
            log.exception("publisher shutdown failed")
        self._feed.close()
        self._nudge.close()

    def _step(self) -> None:
        now = time.monotonic()
        if self._client is None:
            if now < self._next_connect:
                self._stop.wait(min(self._next_connect - now, 0.5))
            else:
                self._connect()
            return
        if self._ledger.inflight or self._ledger.acks_waiting or self._client.want_write():
            rc = self._client.loop(timeout=0.01)
        else:  # idle: wait for the broker, the next poll, or wake()/stop(), whichever is first
            polling = self._state is LinkState.CONNECTED and now >= self._acks.paused_until
            wait_s = min(0.2, max(0.0, self._next_poll - now)) if polling else 0.05
            self._nudge.wait(self._client.socket(), wait_s)
            rc = self._client.loop(timeout=0.0)
        self._process_results()
        if self._drop_reason is not None:
            self._drop(self._drop_reason)
        elif rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop(f"connection lost: {mqtt.error_string(rc)}")
        elif self._state is LinkState.CONNECTING:
            if time.monotonic() - self._connect_started > self.cfg.connect_timeout_s:
                self._drop(f"no CONNACK within {self.cfg.connect_timeout_s:g} s")
        elif not self._check_stall():
            if self._requeue.run_if_due(now):
                self._feed.forget_fetched()
                self._next_poll = 0.0
            if self._fill_window():
                self._maybe_publish_status()

    def _connect(self) -> None:
        self._drop_reason = None
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
            will = self._feed.status_payload(online=False, seq=0)
            client.will_set(self._feed.topics.status, will, 1, True)
        self._feed.forget_fetched()
        self._connect_started = time.monotonic()
        try:
            connect(client, self.cfg, clean_start=True)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._fail(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}")
            return
        self._client = client
        self._state = LinkState.CONNECTING

    def _fail(self, reason: str) -> None:
        if self._acks.refusal is not None:
            # Some brokers close the connection right after refusing: keep the cause in view.
            reason = f"{self._acks.refusal}; then {reason}"
        self.counters.connect_failures += 1
        delay = self._backoff.next_delay_s()
        self._next_connect = time.monotonic() + delay
        self._link.set(connected=False, error=reason)
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
        self._state = LinkState.CONNECTED
        self._backoff.reset()
        self._next_status = self._next_poll = 0.0
        self._acks.connected()
        self.counters.connects += 1
        self._link.set(connected=True, error=None)
        log.info("connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.client_id)

    def _on_disconnect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if client is self._client and self._state is LinkState.CONNECTED and rc.is_failure:
            self._drop_reason = f"connection closed: {reason_text(rc)}"

    def _on_publish(self, client: mqtt.Client, u: Any, mid: int, rc: Any, props: Any) -> None:
        if client is self._client:
            self._acks.queue(mid, rc)

    def _drop(self, reason: str) -> None:
        """Abandon the connection; its unacknowledged records stay pending in the outbox."""
        try:
            self._process_results()
            self._mark(force=True)
        finally:
            self._ledger.forget_acks()
            self._ledger.forget_inflight()
        client, self._client = self._client, None
        self._state = LinkState.OFFLINE
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
        acked, marked = self._acks.settle()
        if acked:
            self._next_poll = 0.0
        self._marked(marked)

    def _mark(self, *, force: bool) -> None:
        self._marked(self._acks.mark(force=force))

    def _marked(self, marked: Marked) -> None:
        if marked.findings:
            self._feed.findings_acked()
        if marked.findings or marked.images:
            self._next_poll = 0.0  # acked findings may have images to send now

    def _check_stall(self) -> bool:
        """No PUBACK for too long while records wait: the link is half-open. Drop it."""
        stalled_s = self._acks.stalled_s()
        if stalled_s is None or stalled_s <= self.cfg.puback_timeout_s:
            return False
        self._drop(f"no PUBACK for {stalled_s:.0f} s: link half-open, reconnecting")
        # Counted once the link status says so: a reader of the counter then sees the reason.
        self.counters.half_open_drops += 1
        return True

    # --- sending --------------------------------------------------------------------------

    def _fill_window(self) -> bool:
        """Hand paho the next records, most urgent first; False if the connection dropped."""
        now = time.monotonic()
        free = self.cfg.inflight_window - len(self._ledger.inflight)
        if free <= 0 or now < self._acks.paused_until:
            return True
        if self._ledger.inflight and free < max(1, self.cfg.inflight_window // 4):
            return True  # wait for a few more acks: one query for several slots
        if now < self._next_poll and not self._wake.is_set():
            return True
        self._wake.clear()
        handed = 0
        for message in self._feed.messages(free, self._ledger):
            if not self._send(message):
                return False
            handed += 1
        if handed == 0:
            self._next_poll = now + self.idle_poll_s
            if not self._ledger.inflight and not self._ledger.acks_waiting:
                self._idle.set()
        else:
            self._idle.clear()
        return True

    def _send(self, message: Message) -> bool:
        assert self._client is not None
        props = message.properties if self._client.protocol == mqtt.MQTTv5 else None
        info = self._client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, properties=props
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop(f"publish failed: {mqtt.error_string(info.rc)}")
            return False
        self._ledger.handed(info.mid, message.sent)
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
        return self._send(self._feed.status_message(online=online, seq=self._status_seq))

    def _shutdown(self) -> None:
        """Say offline (retained), let the last PUBACKs in, and disconnect cleanly."""
        if self._state is not LinkState.CONNECTED:
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
        self._state = LinkState.OFFLINE
        self._link.set(connected=False, error=None)
