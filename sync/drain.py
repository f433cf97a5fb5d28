"""Send the outbox's backlog and return: `roadpatrol sync drain`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edge.mqtt_config import MqttConfig
from edge.outbox import Outbox
from sync.publisher import Publisher


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int  # findings + images + track points acknowledged in this run
    sent_findings: int
    sent_images: int
    sent_track_points: int
    remaining: int  # findings + images + track points still pending
    elapsed_s: float
    last_error: str | None


def remaining_records(outbox: Outbox) -> int:
    s = outbox.summary()
    return s.pending + s.pending_images + s.pending_track_points


def drain(
    cfg: MqttConfig,
    outbox: Outbox,
    vehicle_id: str,
    *,
    timeout_s: float,
    stop: threading.Event | None = None,
) -> DrainResult:
    """Publish until the outbox is empty, ``timeout_s`` passes, or ``stop`` is set."""
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
    stop = stop or threading.Event()
    publisher.start()
    try:
        while not stop.is_set():
            left_s = timeout_s - (time.monotonic() - started)
            if left_s <= 0:
                break
            # Counting the outbox competes with the publisher's queries: ask when it is idle.
            if publisher.wait_idle(min(left_s, 1.0)):
                if remaining_records(outbox) == 0:
                    break
                stop.wait(min(left_s, 0.5))  # idle with records left: refused, or retrying
    finally:
        publisher.stop()
    c = publisher.counters
    return DrainResult(
        sent=c.findings_sent + c.images_sent + c.track_points_sent,
        sent_findings=c.findings_sent,
        sent_images=c.images_sent,
        sent_track_points=c.track_points_sent,
        remaining=remaining_records(outbox),
        elapsed_s=round(time.monotonic() - started, 3),
        last_error=publisher.link_status().last_error,
    )
