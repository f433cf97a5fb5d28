"""PUBACK results, from paho's callback to the outbox: the only way a record becomes sent.

``on_publish`` runs under paho's locks, so it only queues (message id, reason code). The
publisher thread then settles them here: a success is acknowledged in the ledger and marked in
the outbox in batches (one commit, one fsync, for many); a failure (e.g. not authorised) is
counted, reported, and parked for a retry after a backoff, still pending in the outbox.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from edge.backoff import Backoff
from sync.ledger import Ledger, Marked, Sent
from sync.link import LinkTracker
from sync.mqtt_client import reason_text

log = logging.getLogger("sync.publisher")


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


class Acknowledgements:
    def __init__(
        self,
        ledger: Ledger,
        counters: PublisherCounters,
        link: LinkTracker,
        refusal_backoff: Backoff,
    ) -> None:
        self.ledger = ledger
        self.counters = counters
        self.link = link
        self.refusal_backoff = refusal_backoff
        self.results: deque[tuple[int, Any]] = deque()  # (mid, reason code) from on_publish
        self.last_ack_at = 0.0  # monotonic time of the latest PUBACK of ours
        self.paused_until = 0.0  # after a refusal, send nothing new before this
        self.refusal: str | None = None  # the latest refusal, until records get through

    def queue(self, mid: int, reason_code: Any) -> None:
        """From ``on_publish``, under paho's locks: hand over, nothing else."""
        self.results.append((mid, reason_code))

    def connected(self) -> None:
        self.last_ack_at = time.monotonic()

    def settle(self) -> tuple[bool, Marked]:
        """Take in the queued results and mark what is due; (any of ours acked, what was marked)."""
        acked = False
        while self.results:
            mid, rc = self.results.popleft()
            sent = self.ledger.acknowledged(mid, ok=not rc.is_failure)
            if sent is None:
                continue
            acked = True
            self.last_ack_at = time.monotonic()
            if rc.is_failure:
                self._refused(sent, rc)
            else:
                self.counters.bytes_acked += sent.nbytes
        return acked, self.mark(force=False)

    def mark(self, *, force: bool) -> Marked:
        marked = self.ledger.flush(force=force)
        self.counters.findings_sent += len(marked.findings)
        self.counters.images_sent += len(marked.images)
        self.counters.track_points_sent += len(marked.track_points)
        if marked.findings or marked.images:
            self.refusal_backoff.reset()
            self.refusal = None
            self.link.acked((marked.images or marked.findings)[-1])
        return marked

    def stalled_s(self) -> float | None:
        """How long records have waited with no PUBACK at all; None if none is in flight."""
        oldest = self.ledger.oldest_handed_at()
        if oldest is None:
            return None
        return time.monotonic() - max(oldest, self.last_ack_at)

    def _refused(self, sent: Sent, rc: Any) -> None:
        """The broker said no (e.g. not authorised): keep the record, retry it later."""
        self.counters.refused += 1
        delay = self.refusal_backoff.next_delay_s()
        self.paused_until = time.monotonic() + delay
        self.ledger.park(sent, self.paused_until)
        self.refusal = f"broker refused {sent.kind} {sent.keys[0]}: {reason_text(rc)}"
        self.link.set(connected=True, error=self.refusal)
        log.error("%s; kept in the outbox, retrying in %.1f s", self.refusal, delay)
