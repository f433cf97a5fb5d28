"""The office's receipts: telling each vehicle what its database now holds.

A broker's PUBACK to a vehicle only says the broker took the message; it may still drop it
(no subscriber, an expired session, a restart without persistence). So after a finding or an
image is committed to the office database (a repeat delivery too: the vehicle sent it again
because an earlier receipt went missing), its id is queued here, and a batch per vehicle goes
out on ``<prefix>/<vehicle>/receipt`` (QoS 1, ``roadpatrol.receipt`` v1, sync.receipts) within
``batch_s`` or once it holds ``MAX_IDS`` ids. Nothing is receipted before its commit; a receipt
lost on the way (the receiver killed before it went out, the link down) only means the vehicle
sends the record again after its receipt timeout, and the office stores it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.wire.ids import boot_id as this_boot_id
from edge.wire.topics import Topics
from sync.receipts import MAX_IDS, receipt_payload

log = logging.getLogger("sync.office.receipts")


class ReceiptSender:
    """Batches receipts and publishes them through the receiver's current client."""

    def __init__(
        self,
        topic_prefix: str,
        client: Callable[[], mqtt.Client | None],
        *,
        batch_s: float = 0.2,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.batch_s = batch_s
        self.boot_id = this_boot_id()
        self.sent = 0  # receipt messages handed to paho
        self._client = client
        self._lock = threading.Lock()
        self._batches: dict[str, tuple[list[str], list[str]]] = {}
        self._seq: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="office-receipts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Send what is queued (its records are committed), then end the thread."""
        self._stop.set()
        self._thread.join(5.0)
        self.flush()

    def stored(self, vehicle_id: str, kind: str, finding_id: str) -> None:
        """Called after the commit of a finding (``kind`` 'finding') or an image ('image')."""
        with self._lock:
            findings, images = self._batches.setdefault(vehicle_id, ([], []))
            ids = findings if kind == "finding" else images
            if finding_id not in ids:
                ids.append(finding_id)
            full = len(ids) >= MAX_IDS
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batches, self._batches = self._batches, {}
        client = self._client()
        for vehicle_id, (findings, images) in batches.items():
            if client is None:
                log.warning("receipts for %s not sent: not connected", vehicle_id)
                continue
            self._publish(client, vehicle_id, findings, images)

    def _publish(
        self, client: mqtt.Client, vehicle_id: str, findings: list[str], images: list[str]
    ) -> None:
        seq = self._seq.get(vehicle_id, 0) + 1
        self._seq[vehicle_id] = seq
        payload = receipt_payload(vehicle_id, self.boot_id, seq, findings, images)
        topic = Topics(self.topic_prefix, vehicle_id).receipt
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # The vehicle sends these again after its receipt timeout; we store them once.
            log.warning(
                "receipt to %s (%d findings, %d images) not sent: %s",
                vehicle_id, len(findings), len(images), mqtt.error_string(info.rc),
            )  # fmt: skip
            return
        self.sent += 1

    def _run(self) -> None:
        while not self._stop.wait(self.batch_s):
            try:
                self.flush()
            except Exception:  # receipts are re-covered by the vehicle's re-send
                log.exception("sending receipts failed")
