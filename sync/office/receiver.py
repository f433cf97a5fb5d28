"""The office receiver: MQTT messages from the fleet into the office database.

Subscribes to ``<prefix>/+/#`` with a persistent session (clean start off, a session expiry), so
messages published while the receiver is down wait at the broker. After each finding or image is
committed, its receipt goes back to the vehicle (sync.office.receipts). Acknowledgements are
manual: a message is acked only after it is stored, or after it was judged malformed and
skipped, so a database failure makes the broker deliver it again instead of losing it.

Each message is checked and stored by the handler in sync.office.messages.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.backoff import Backoff
from edge.config.mqtt import MqttConfig
from sync.mqtt_client import connect, make_client, reason_text
from sync.office.messages import STORE_FAILURES, MessageHandler, ReceiverStats, Rejected
from sync.office.receipts import ReceiptSender
from sync.office.store_api import OfficeStore

log = logging.getLogger("sync.office.receiver")

SHARE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # no '/', '+', '#' in a share name


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
        log.info("subscribed to %s: receiving", self.topic_filter)
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
