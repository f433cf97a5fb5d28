"""The office's receipts in the outbox: a record's delivery ends at the office, not the broker.

A finding (and, separately, its image) goes through three states:

- pending: ``sent_at`` NULL (for an image: ``image_state = 'pending'``);
- acknowledged by the broker, awaiting the office's receipt: ``sent_at`` set, ``receipted_at``
  NULL (``image_state = 'sent'``, ``image_receipted_at`` NULL);
- receipted: the office committed it to its database and said so (``receipted_at`` set). Only
  this ends its delivery, and retention counts from it.

A broker acknowledges a PUBLISH even when nobody subscribes (or the office's session expired,
or a broker without persistence restarts): such a record is sent again when no receipt came
within the receipt timeout, by putting it back to pending (:func:`requeue`). The wait doubles
with each try (from the first acknowledgement, ``first_sent_at``), up to a cap, so that an
office that is down for a day does not get the backlog once per timeout.

Schema version 2 adds the four columns; :func:`migrate` adds them in place to a version-1
outbox, whose records the broker had acknowledged count as awaiting a receipt (nothing told
the vehicle that the office has them), so they are sent once more if none comes.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger("edge.outbox")

# Added by schema version 2 (schema.DDL has them for a new outbox).
COLUMNS = (
    ("first_sent_at", "REAL"),  # Unix s of the broker's first acknowledgement of the finding
    ("receipted_at", "REAL"),  # Unix s the office's receipt of the finding arrived
    ("image_first_sent_at", "REAL"),
    ("image_receipted_at", "REAL"),
)

# Created after :func:`migrate`, since an older outbox lacks their columns until then.
INDEXES = """
CREATE INDEX IF NOT EXISTS findings_awaiting_receipt
    ON findings (first_sent_at, sent_at) WHERE receipted_at IS NULL AND first_sent_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS findings_images_awaiting_receipt
    ON findings (image_first_sent_at, image_sent_at, image_state)
    WHERE image_receipted_at IS NULL AND image_first_sent_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS findings_receipted ON findings (receipted_at)
    WHERE receipted_at IS NOT NULL;
"""

LAST_RECEIPT_KEY = "last_receipt_at"  # in the meta table: Unix s of the latest receipt

# Parameters: (Unix seconds now, id). Unknown ids, or ids already receipted, change nothing.
# A receipt for a record never acknowledged here (the PUBACK was lost with the link) also
# ends its delivery: the office has it.
RECEIPT_FINDING = (
    "UPDATE findings SET receipted_at = ?1, sent_at = COALESCE(sent_at, ?1), "
    "first_sent_at = COALESCE(first_sent_at, ?1) WHERE id = ?2 AND receipted_at IS NULL"
)
RECEIPT_IMAGE = (
    "UPDATE findings SET image_receipted_at = ?1, "
    "image_first_sent_at = COALESCE(image_first_sent_at, ?1), "
    "image_sent_at = COALESCE(image_sent_at, ?1), "
    "image_state = CASE image_state WHEN 'pending' THEN 'sent' ELSE image_state END "
    "WHERE id = ?2 AND image_receipted_at IS NULL AND image_state <> 'none'"
)

# :now, :timeout, :cap in seconds. The wait after an acknowledgement is the time since the
# first one (so it doubles with each try), at least the timeout, at most the cap.
_REQUEUE_FINDINGS = """
UPDATE findings SET sent_at = NULL
WHERE receipted_at IS NULL AND first_sent_at IS NOT NULL AND sent_at IS NOT NULL
  AND sent_at + MAX(:timeout, MIN(:cap, sent_at - first_sent_at)) <= :now
"""
_REQUEUE_IMAGES = """
UPDATE findings SET image_state = 'pending', image_sent_at = NULL
WHERE image_receipted_at IS NULL AND image_first_sent_at IS NOT NULL AND image_state = 'sent'
  AND image_sent_at + MAX(:timeout, MIN(:cap, image_sent_at - image_first_sent_at)) <= :now
"""


@dataclass(frozen=True, slots=True)
class Awaiting:
    """What the broker acknowledged and the office has not confirmed yet."""

    findings: int = 0  # acknowledged by the broker, no receipt yet
    images: int = 0
    oldest_age_s: float | None = None  # since the first acknowledgement of the oldest one
    last_receipt_age_s: float | None = None  # None: no receipt ever arrived here
    # How long the office has said nothing while something waits for it: since the latest
    # receipt, or since the oldest record was first acknowledged if that is later.
    office_silent_s: float | None = None


def migrate(conn: sqlite3.Connection) -> bool:
    """Add the receipt columns and indexes to an older outbox in place; True if it was older.

    Its acknowledged records become awaiting a receipt from their acknowledgement time."""
    missing = _missing_columns(conn)
    if missing:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Again under the write lock: a second process (a drain beside the recorder) may
            # have migrated it while this one waited.
            for name, kind in _missing_columns(conn):
                conn.execute(f"ALTER TABLE findings ADD COLUMN {name} {kind}")
            conn.execute("UPDATE findings SET first_sent_at = sent_at WHERE sent_at IS NOT NULL")
            conn.execute(
                "UPDATE findings SET image_first_sent_at = image_sent_at "
                "WHERE image_sent_at IS NOT NULL"
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    conn.executescript(INDEXES)
    return bool(missing)


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    have = {row[1] for row in conn.execute("PRAGMA table_info(findings)")}
    return [(name, kind) for name, kind in COLUMNS if name not in have]


def apply(
    conn: sqlite3.Connection, now: float, findings: list[str], images: list[str]
) -> tuple[int, int]:
    """Mark receipted (inside the caller's transaction); returns (findings, images) changed."""
    before = conn.total_changes
    conn.executemany(RECEIPT_FINDING, [(now, i) for i in findings])
    changed_findings = conn.total_changes - before
    before = conn.total_changes
    conn.executemany(RECEIPT_IMAGE, [(now, i) for i in images])
    changed_images = conn.total_changes - before
    if changed_findings or changed_images:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (LAST_RECEIPT_KEY, repr(now))
        )
    return changed_findings, changed_images


def requeue(
    conn: sqlite3.Connection, now: float, timeout_s: float, cap_s: float
) -> tuple[int, int]:
    """Put what waited too long for its receipt back to pending (inside the caller's
    transaction); returns (findings, images) requeued."""
    params = {"now": now, "timeout": timeout_s, "cap": max(cap_s, timeout_s)}
    findings = conn.execute(_REQUEUE_FINDINGS, params).rowcount
    images = conn.execute(_REQUEUE_IMAGES, params).rowcount
    if findings or images:
        log.warning(
            "outbox: no receipt from the office within %g s for %d findings and %d images: "
            "sending them again",
            timeout_s,
            findings,
            images,
        )
    return findings, images


def awaiting(conn: sqlite3.Connection, now: datetime | None = None) -> Awaiting:
    t = (now or datetime.now(UTC)).timestamp()
    findings, oldest_f = conn.execute(
        "SELECT COALESCE(SUM(sent_at IS NOT NULL), 0), MIN(first_sent_at) FROM findings "
        "WHERE receipted_at IS NULL AND first_sent_at IS NOT NULL"
    ).fetchone()
    images, oldest_i = conn.execute(
        "SELECT COALESCE(SUM(image_state = 'sent'), 0), MIN(image_first_sent_at) FROM findings "
        "WHERE image_receipted_at IS NULL AND image_first_sent_at IS NOT NULL "
        "AND image_state IN ('sent', 'pending')"
    ).fetchone()
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LAST_RECEIPT_KEY,)).fetchone()
    last = None if row is None else float(row[0])
    oldest = min((v for v in (oldest_f, oldest_i) if v is not None), default=None)
    silent = None
    if oldest is not None:
        silent = round(max(0.0, t - max(oldest, last or oldest)), 3)
    return Awaiting(
        findings=int(findings),
        images=int(images),
        oldest_age_s=None if oldest is None else round(max(0.0, t - oldest), 3),
        last_receipt_age_s=None if last is None else round(max(0.0, t - last), 3),
        office_silent_s=silent,
    )
