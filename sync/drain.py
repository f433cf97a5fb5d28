"""Send the outbox's backlog and return: `roadpatrol sync drain`.

Done means the office has it: the drain waits until every finding and image is receipted by
the office (sync.receipts), sending again what gets no receipt within the receipt timeout, so
that a technician's one-off drain that exits 0 means the office database holds everything.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edge.config.mqtt import MqttConfig
from edge.outbox import Outbox
from sync.publisher import Publisher
from sync.receipts import ReceiptListener


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int  # findings + images + track points acknowledged in this run
    sent_findings: int
    sent_images: int
    sent_track_points: int
    remaining: int  # findings + images + track points still pending
    awaiting_receipt: int  # findings + images the broker acknowledged, the office not yet
    receipted: int  # findings + images the office's receipts confirmed during this run
    elapsed_s: float
    last_error: str | None


def remaining_records(outbox: Outbox) -> int:
    s = outbox.summary()
    return s.pending + s.pending_images + s.pending_track_points


def awaiting_records(outbox: Outbox) -> int:
    waiting = outbox.awaiting_receipt()
    return waiting.findings + waiting.images


def drain(
    cfg: MqttConfig,
    outbox: Outbox,
    vehicle_id: str,
    *,
    timeout_s: float,
    stop: threading.Event | None = None,
    wait_receipts: bool = True,
) -> DrainResult:
    """Publish until the office has receipted everything (without ``wait_receipts``: until
    the broker acknowledged everything), ``timeout_s`` passes, or ``stop`` is set."""
    started = time.monotonic()
    # Its own client id, so that a drain beside a running recorder does not kick it off.
    publisher = Publisher(
        cfg,
        outbox,
        vehicle_id,
        publish_status=False,
        client_id=f"{cfg.effective_client_id(vehicle_id)}-drain",
        idle_poll_s=0.1,
    )
    # A clean session: a drain leaves nothing behind at the broker. Receipts that come after
    # it has gone reach the recorder's persistent session, or the re-send covers them.
    receipts = ReceiptListener(
        cfg, outbox, vehicle_id, client_id=f"{publisher.client_id}-receipts", persistent=False
    )
    stop = stop or threading.Event()
    receipts.start()
    # Subscribed before anything is sent, so that no receipt for this run goes past it.
    receipts.wait_subscribed(min(timeout_s, cfg.connect_timeout_s))
    publisher.start()
    try:
        while not stop.is_set():
            left_s = timeout_s - (time.monotonic() - started)
            if left_s <= 0:
                break
            # Counting the outbox competes with the publisher's queries: ask when it is idle.
            if publisher.wait_idle(min(left_s, 1.0)):
                if remaining_records(outbox) == 0 and (
                    not wait_receipts or awaiting_records(outbox) == 0
                ):
                    break
                # Idle with records left (refused, retrying, or awaiting receipts): look again
                # after the next receipt, or soon.
                with receipts.applied:
                    receipts.applied.wait(min(left_s, 0.5))
    finally:
        publisher.stop()
        receipts.stop()
    c = publisher.counters
    return DrainResult(
        sent=c.findings_sent + c.images_sent + c.track_points_sent,
        sent_findings=c.findings_sent,
        sent_images=c.images_sent,
        sent_track_points=c.track_points_sent,
        remaining=remaining_records(outbox),
        awaiting_receipt=awaiting_records(outbox),
        receipted=receipts.stats.findings + receipts.stats.images,
        elapsed_s=round(time.monotonic() - started, 3),
        last_error=publisher.link_status().last_error,
    )
