"""Where each record handed to paho stands, until the outbox knows it was delivered.

A record is in flight (handed over under a message id), then acknowledged but not yet marked
in the outbox (marks are batched: one commit, one fsync, for many PUBACKs), or parked after the
broker refused it. In every one of those states it is "busy": the publisher must not fetch it
from the outbox again, so that paho never holds the same record twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edge.outbox import Outbox

MARK_EVERY_S = 0.1  # acknowledged records reach the outbox within this long…
MARK_BATCH = 256  # …or once this many are waiting
_KINDS = ("finding", "image", "track")


@dataclass(slots=True)
class Sent:
    kind: str  # finding | image | track | status
    keys: tuple[Any, ...]  # the finding id, or the track point ids
    nbytes: int
    at: float = 0.0  # monotonic time handed to paho


@dataclass
class Marked:
    """What one flush wrote to the outbox."""

    findings: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    track_points: list[int] = field(default_factory=list)


def _keys(sent: Sent) -> Iterator[tuple[str, Any]]:
    for key in sent.keys:
        yield sent.kind, key


class Ledger:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.inflight: dict[int, Sent] = {}  # message id → record, current connection only
        self._inflight_keys: set[tuple[str, Any]] = set()
        self._acked: dict[str, list[Any]] = {k: [] for k in _KINDS}
        self._acked_since = 0.0
        self._parked: dict[tuple[str, Any], float] = {}  # refused record → retry time

    def handed(self, mid: int, sent: Sent) -> None:
        sent.at = time.monotonic()
        self.inflight[mid] = sent
        self._inflight_keys.update(_keys(sent))

    def acknowledged(self, mid: int, ok: bool) -> Sent | None:
        """A PUBACK arrived; returns its record (None if unknown). Refused ones go back."""
        sent = self.inflight.pop(mid, None)
        if sent is None:
            return None
        self._inflight_keys.difference_update(_keys(sent))
        if ok and sent.kind in _KINDS:
            if not self.acks_waiting:
                self._acked_since = time.monotonic()
            self._acked[sent.kind].extend(sent.keys)
        return sent

    def park(self, sent: Sent, until: float) -> None:
        for key in _keys(sent):
            self._parked[key] = until

    def busy(self, kind: str) -> set[Any]:
        """Keys of ``kind`` not to fetch again: in flight, acked but unmarked, or parked."""
        keys = {key for kd, key in self._inflight_keys if kd == kind}
        keys.update(self._acked.get(kind, ()))
        if self._parked:
            now = time.monotonic()
            self._parked = {k: t for k, t in self._parked.items() if t > now}
            keys.update(key for kd, key in self._parked if kd == kind)
        return keys

    @property
    def acks_waiting(self) -> int:
        return sum(len(v) for v in self._acked.values())

    def oldest_handed_at(self) -> float | None:
        return min((s.at for s in self.inflight.values()), default=None)

    def flush(self, *, force: bool) -> Marked:
        """Mark acknowledged records sent in the outbox, batched unless ``force``.

        Until then they stay busy, so nothing is sent twice meanwhile; a crash in between only
        means they are sent again, and the office drops the repeats by finding id.
        """
        waiting = self.acks_waiting
        if waiting == 0:
            return Marked()
        young = time.monotonic() - self._acked_since < MARK_EVERY_S
        if not force and waiting < MARK_BATCH and young and self.inflight:
            return Marked()  # more PUBACKs are on their way: let them share the commit
        done, self._acked = self._acked, {k: [] for k in _KINDS}
        if done["finding"]:
            self.outbox.mark_findings_sent(done["finding"])
        if done["image"]:
            self.outbox.mark_images_sent(done["image"])
        if done["track"]:
            self.outbox.mark_track_sent(done["track"])
        return Marked(done["finding"], done["image"], done["track"])

    def forget_inflight(self) -> None:
        """The connection is gone: what paho held is lost, and pending again in the outbox."""
        self.inflight.clear()
        self._inflight_keys.clear()

    def forget_acks(self) -> None:
        self._acked = {k: [] for k in _KINDS}
