"""The link as the driver's screen sees it: connected, offline since, last error, last ack.

The publisher thread writes it; the status snapshot reads it from other threads, so every
change replaces the whole frozen ``LinkStatus`` under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum

from edge.status import LinkStatus
from edge.wire.serialize import format_utc
from sync.link_reason import link_reason


class LinkState(StrEnum):
    """Where the publisher's connection is; only the publisher thread changes it."""

    OFFLINE = "offline"  # no client: the next attempt waits for its backoff
    CONNECTING = "connecting"  # a client, no CONNACK yet (dropped after connect_timeout_s)
    CONNECTED = "connected"  # CONNACK accepted: records go out


class LinkTracker:
    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._lock = threading.Lock()
        self._status = LinkStatus(enabled=enabled, offline_since_utc=utc_now())

    def snapshot(self) -> LinkStatus:
        with self._lock:
            return self._status

    def set(self, *, connected: bool, error: str | None) -> None:
        with self._lock:
            old = self._status
            offline_since = old.offline_since_utc
            if connected:
                offline_since = None
            elif old.connected or offline_since is None:
                offline_since = utc_now()
            self._status = LinkStatus(
                enabled=self._enabled,
                connected=connected,
                offline_since_utc=offline_since,
                last_acked_id=old.last_acked_id,
                last_error=error,
                last_reason=link_reason(error),
            )

    def acked(self, record_id: str) -> None:
        with self._lock:
            self._status = replace(self._status, last_acked_id=record_id)


def utc_now() -> str:
    return format_utc(datetime.now(UTC))
