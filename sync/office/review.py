"""Office review of findings: confirm, correct or dismiss what the vehicle said.

A review is a row of its own in ``reviews``, beside the finding and never over it: the vehicle's
record stays exactly as delivered, every review is kept, and the current one is the newest by
row id (entry order, not a clock that a PC may have wrong). A repeated delivery of a finding only
counts ``findings.deliveries`` up, so it can never erase a review.

The *office grade* is what the office acts on: the corrected grade after a correction, 0 after
``not_damage``, otherwise (confirmed or unreviewed) the vehicle's grade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.wire.serialize import format_utc
from sync.office.site_membership import resite_finding
from sync.office.store import CURRENT_REVIEW_JOIN, OfficeStore

VERDICTS = ("confirmed", "corrected", "not_damage")
TYPE_CODES = ("D00", "D10", "D20", "D40")
# The brief's default grade per type; ranks the types of a correction, which carry no grade each.
TYPE_DEFAULT_GRADE = {"D00": 1, "D10": 1, "D20": 2, "D40": 3}
# Ties between types of equal grade go to the more severe kind of damage.
TYPE_PRECEDENCE = {"D00": 0, "D10": 1, "D20": 2, "D40": 3}

# SQL pieces for any query over ``findings f`` joined to its current review ``r``
# (CURRENT_REVIEW_JOIN, from the store): the office grade, and the review's columns.
OFFICE_GRADE_SQL = (
    "(CASE r.verdict WHEN 'corrected' THEN r.grade WHEN 'not_damage' THEN 0 ELSE f.grade END)"
)
REVIEW_SELECT = (
    "r.verdict AS review_verdict, r.grade AS reviewed_grade, r.type_codes AS reviewed_types, "
    f"r.reviewer AS reviewed_by, r.reviewed_at_utc, {OFFICE_GRADE_SQL} AS office_grade, "
    "r.note AS review_note"
)
REVIEW_COLUMNS = (
    "review_verdict", "reviewed_grade", "reviewed_types", "reviewed_by", "reviewed_at_utc",
    "office_grade",
)  # fmt: skip


class ReviewError(ValueError):
    """A review that cannot be stored; the message names the offending value."""


@dataclass(frozen=True, slots=True)
class Review:
    finding_id: str
    verdict: str
    grade: int | None  # the corrected grade; None unless corrected
    type_codes: tuple[str, ...]  # the corrected types; () unless corrected
    reviewer: str
    note: str
    reviewed_at_utc: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding_id,
            "verdict": self.verdict,
            "grade": self.grade,
            "type_codes": list(self.type_codes),
            "reviewer": self.reviewer,
            "note": self.note,
            "reviewed_at_utc": self.reviewed_at_utc,
        }


def parse_type_codes(text: str) -> tuple[str, ...]:
    """``"D00,D40"`` → ("D00", "D40"), sorted, duplicates dropped; ReviewError names a bad code."""
    codes = [c.strip().upper() for c in text.split(",")]
    if not any(codes):
        raise ReviewError(f"--types {text!r}: give one or more of {', '.join(TYPE_CODES)}")
    unknown = [c for c in codes if c not in TYPE_CODES]
    if unknown:
        raise ReviewError(
            f"--types {text!r}: unknown type code {', '.join(repr(c) for c in unknown)}; "
            f"expected {', '.join(TYPE_CODES)}"
        )
    return tuple(sorted(set(codes)))


def ensure_reviews_readable(store: OfficeStore) -> None:
    """Let review queries run on a database made before reviews existed, opened read-only.

    Such a file has no ``reviews`` table and must not be written by an export; an empty
    temporary table of the same name (in the connection's own temp schema) answers for it.
    """
    if not store.has_table("reviews"):
        store.query(
            "CREATE TEMP TABLE IF NOT EXISTS reviews (id INTEGER PRIMARY KEY, finding_id TEXT, "
            "verdict TEXT, grade INTEGER, type_codes TEXT, reviewer TEXT, note TEXT, "
            "reviewed_at_utc TEXT)"
        )


def add_review(
    store: OfficeStore,
    finding_id: str,
    verdict: str,
    *,
    reviewer: str,
    grade: int | None = None,
    type_codes: tuple[str, ...] | None = None,
    note: str = "",
) -> Review:
    """Validate and store one review; nothing is written when ReviewError is raised.

    A correction without ``type_codes`` keeps the vehicle's types, written into the review so
    that the row says in full what the office decided. The finding's damage sites follow the
    review in the same transaction (``site_membership``).
    """
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    rows = store.query("SELECT type_codes FROM findings WHERE id = ?", (finding_id,))
    if not rows:
        raise ReviewError(f"finding {finding_id!r}: no such finding in {store.location}")
    if not reviewer.strip():
        raise ReviewError("--by '': the reviewer's name must not be empty")
    if verdict == "corrected":
        if grade is None or not 0 <= grade <= 3:
            raise ReviewError(f"--grade {grade}: must be 0, 1, 2 or 3")
        if grade == 0 and type_codes:
            raise ReviewError(
                f"--grade 0 with --types {','.join(type_codes)}: grade 0 means no damage; "
                "leave out --types"
            )
        bad = [c for c in type_codes or () if c not in TYPE_CODES]
        if bad:
            raise ReviewError(f"type code {bad[0]!r}: expected {', '.join(TYPE_CODES)}")
        if type_codes is None:
            vehicle_types = rows[0]["type_codes"]
            type_codes = tuple(vehicle_types.split(",")) if vehicle_types and grade else ()
    elif grade is not None or type_codes:
        raise ReviewError(f"a grade or types go with a correction, not with {verdict}")
    review = Review(
        finding_id=finding_id,
        verdict=verdict,
        grade=grade if verdict == "corrected" else None,
        type_codes=tuple(sorted(type_codes or ())) if verdict == "corrected" else (),
        reviewer=reviewer.strip(),
        note=note,
        reviewed_at_utc=format_utc(datetime.now(UTC)),
    )
    with store.transaction():
        store.execute(
            "INSERT INTO reviews (finding_id, verdict, grade, type_codes, reviewer, note, "
            "reviewed_at_utc) VALUES (?,?,?,?,?,?,?)",
            (
                review.finding_id, review.verdict, review.grade,
                ",".join(review.type_codes) if verdict == "corrected" else None,
                review.reviewer, review.note, review.reviewed_at_utc,
            ),
        )  # fmt: skip
        resite_finding(store, finding_id)
    return review


def review_history(store: OfficeStore, finding_id: str) -> list[Review]:
    """Every review of a finding, oldest first; the last one is current."""
    rows = store.query(
        "SELECT finding_id, verdict, grade, type_codes, reviewer, note, reviewed_at_utc "
        "FROM reviews WHERE finding_id = ? ORDER BY id",
        (finding_id,),
    )
    return [
        Review(
            finding_id=r["finding_id"], verdict=r["verdict"], grade=r["grade"],
            type_codes=tuple(r["type_codes"].split(",")) if r["type_codes"] else (),
            reviewer=r["reviewer"], note=r["note"], reviewed_at_utc=r["reviewed_at_utc"],
        )
        for r in rows
    ]  # fmt: skip


QUEUE_COLUMNS = (
    "id", "office_grade", "grade", "type_codes", "captured_at_utc", "vehicle_id", "lat_deg",
    "lon_deg", "image_path", "review_verdict", "reviewed_by", "reviewed_at_utc",
)  # fmt: skip


def review_queue(
    store: OfficeStore, *, unreviewed_only: bool = False, min_grade: int = 0
) -> list[dict[str, Any]]:
    """Findings for the reviewer, most urgent first (office grade, then oldest capture)."""
    rows = store.query(
        f"SELECT f.id, f.grade, f.type_codes, f.captured_at_utc, f.vehicle_id, f.lat_deg, "
        f"f.lon_deg, i.path AS image_path, {REVIEW_SELECT} "
        f"FROM findings f LEFT JOIN images i ON i.finding_id = f.id {CURRENT_REVIEW_JOIN} "
        f"WHERE {OFFICE_GRADE_SQL} >= ? AND (? = 0 OR r.id IS NULL) "
        "ORDER BY office_grade DESC, f.captured_at_utc, f.id",
        (min_grade, int(unreviewed_only)),
    )
    return [{c: row[c] for c in QUEUE_COLUMNS} for row in rows]


def vehicle_damages(payload_json: str) -> list[dict[str, Any]]:
    """The damages of a stored finding payload (already schema-checked at ingest)."""
    damages: list[dict[str, Any]] = json.loads(payload_json)["damages"]
    return damages
