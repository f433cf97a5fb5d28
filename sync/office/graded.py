"""Graded images for the technicians: the office's findings as a `model evaluate --folders` tree.

One sub-folder per type code (D00, D10, D20, D40) and ``none``; one image per finding, named by
its finding id. The label of a finding:

- office grade 0 (``not_damage``, corrected to grade 0, or a vehicle grade 0 left as it was)
  → ``none``;
- corrected → the corrected type of the highest default grade (D40 3, D20 2, D00/D10 1);
- confirmed or unreviewed → the vehicle's type of the highest damage grade;
- ties between types of equal grade go to the more severe kind: D40, then D20, D10, D00.

Findings without a received image, and those with no type code the model knows (a crew mark that
names no type, never corrected), are counted as skipped. Images are hard-linked from the office's
images folder when on the same file system (copied otherwise). The tree is built beside ``out``
and renamed into place, so a failed export never leaves a half-filled folder behind.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.office.review import (
    OFFICE_GRADE_SQL,
    TYPE_CODES,
    TYPE_DEFAULT_GRADE,
    TYPE_PRECEDENCE,
    ensure_reviews_readable,
    vehicle_damages,
)
from sync.office.store import CURRENT_REVIEW_JOIN, OfficeStore

NONE_LABEL = "none"  # the folder `model evaluate --folders` reads as "no damage"
LABELS = (*TYPE_CODES, NONE_LABEL)
INDEX_NAME = "graded.csv"  # beside the label folders; `model evaluate` reads only the folders


class GradedExportError(ValueError):
    """The export cannot start or finish; the message names the folder or file."""


@dataclass(frozen=True, slots=True)
class GradedSample:
    finding_id: str
    label: str
    image: Path
    verdict: str | None
    vehicle_grade: int
    office_grade: int
    reviewed_by: str | None
    captured_at_utc: str
    vehicle_id: str


def _strongest(grades: dict[str, int]) -> str | None:
    known = {code: g for code, g in grades.items() if code in TYPE_CODES}
    if not known:
        return None
    return max(known, key=lambda code: (known[code], TYPE_PRECEDENCE[code]))


def label_for(
    office_grade: int, verdict: str | None, reviewed_types: str | None, payload_json: str
) -> str | None:
    """The folder of a finding under the rule in this module's docstring; None: no known type."""
    if office_grade == 0:
        return NONE_LABEL
    if verdict == "corrected":
        codes = [c for c in (reviewed_types or "").split(",") if c]
        return _strongest({c: TYPE_DEFAULT_GRADE.get(c, 0) for c in codes})
    grades: dict[str, int] = {}
    for d in vehicle_damages(payload_json):
        grades[d["type_code"]] = max(grades.get(d["type_code"], 0), int(d["grade"]))
    return _strongest(grades)


def graded_samples(
    store: OfficeStore, *, since: str | None = None, reviewed_only: bool = False
) -> tuple[list[GradedSample], dict[str, int]]:
    """The samples to export (oldest capture first) and the counts of skipped findings."""
    ensure_reviews_readable(store)
    rows = store.query(
        "SELECT f.id, f.vehicle_id, f.grade, f.payload, f.captured_at_utc, "
        "i.finding_id AS has_image, "
        f"r.id AS review_id, r.verdict, r.type_codes AS reviewed_types, r.reviewer, "
        f"{OFFICE_GRADE_SQL} AS office_grade "
        f"FROM findings f LEFT JOIN images i ON i.finding_id = f.id {CURRENT_REVIEW_JOIN} "
        "WHERE f.captured_at_utc >= ? AND (? = 0 OR r.id IS NOT NULL) "
        "ORDER BY f.captured_at_utc, f.id",
        (since or "", int(reviewed_only)),
    )
    samples, skipped = [], {"no_image": 0, "no_type": 0}
    for row in rows:
        label = label_for(
            row["office_grade"], row["verdict"], row["reviewed_types"], row["payload"]
        )
        if label is None:
            skipped["no_type"] += 1
            continue
        image = store.image_path_for(row["vehicle_id"], row["id"])
        if row["has_image"] is None or not image.is_file():
            skipped["no_image"] += 1
            continue
        samples.append(
            GradedSample(
                finding_id=row["id"], label=label, image=image, verdict=row["verdict"],
                vehicle_grade=row["grade"], office_grade=row["office_grade"],
                reviewed_by=row["reviewer"], captured_at_utc=row["captured_at_utc"],
                vehicle_id=row["vehicle_id"],
            )
        )  # fmt: skip
    return samples, skipped


def _place(src: Path, dst: Path) -> bool:
    """Hard link (True) or, across file systems or where links are refused, copy (False)."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def export_graded(
    store: OfficeStore, out: Path, *, since: str | None = None, reviewed_only: bool = False
) -> dict[str, Any]:
    """Write the folder tree to ``out`` (which must be absent or empty); returns the summary."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GradedExportError(f"--out {out}: exists and is not an empty folder")
    samples, skipped = graded_samples(store, since=since, reviewed_only=reviewed_only)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        for label in LABELS:
            (staging / label).mkdir(parents=True)
        linked = 0
        for s in samples:
            linked += _place(s.image, staging / s.label / f"{s.finding_id}.jpg")
        with open(staging / INDEX_NAME, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("finding_id", "label", "review_verdict", "vehicle_grade",
                             "office_grade", "reviewed_by", "captured_at_utc",
                             "vehicle_id"))  # fmt: skip
            for s in samples:
                writer.writerow((s.finding_id, s.label, s.verdict or "", s.vehicle_grade,
                                 s.office_grade, s.reviewed_by or "", s.captured_at_utc,
                                 s.vehicle_id))  # fmt: skip
        if out.exists():
            out.rmdir()
        os.rename(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GradedExportError(f"--out {out}: {exc}") from exc
    folders = dict.fromkeys(LABELS, 0)
    for s in samples:
        folders[s.label] += 1
    return {
        "out": str(out),
        "images": len(samples),
        "folders": folders,
        "skipped": skipped,
        "linked": linked,
        "copied": len(samples) - linked,
        "reviewed_only": reviewed_only,
        "since": since,
    }
