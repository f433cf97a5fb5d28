"""The durable on-disk outbox (SQLite + image files): the truth for what the office lacks."""

from edge.config.outbox import OutboxConfig
from edge.outbox.queries import OutboxSummary, PendingFinding, PendingImage, TrackPoint
from edge.outbox.schema import OutboxError
from edge.outbox.store import Outbox

__all__ = [
    "Outbox",
    "OutboxConfig",
    "OutboxError",
    "OutboxSummary",
    "PendingFinding",
    "PendingImage",
    "TrackPoint",
]
