"""The held-out split of office-graded images: by city (or capture week), never at random, and
the provenance `model adapt` records for the graded folders."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from models.adapt.graded import choose_holdout, read_graded, split_holdout, write_tree

from support.model_data import SHARED_DATA

GRADED = SHARED_DATA / "office_graded_japan"
CITIES = {"adachi", "konan", "muroran", "nagakute"}


@pytest.mark.slow
def test_the_shared_folder_splits_by_the_city_in_the_file_name() -> None:
    graded = read_graded([GRADED])
    assert len(graded.images) == 1013  # the folder's README: 610 + 18 + 228 + 23 + 134
    assert set(graded.groups()) == CITIES
    holdout = choose_holdout(graded, None)
    # closest to a fifth of 1,013 among the cities: Adachi (262), with D00, D20 and none
    assert holdout == "adachi"
    train, held = split_holdout(graded, holdout)
    assert len(train) + len(held) == 1013
    assert all("_adachi_" in g.path.name for g in held)
    assert not any("_adachi_" in g.path.name for g in train)
    assert Counter(g.label for g in held) == {"D00": 172, "D20": 33, "none": 51, "D10": 6}
    source = graded.sources[0]
    assert source["images_per_type"] == {"D00": 610, "D10": 18, "D20": 228, "D40": 23, "none": 134}
    assert source["groups"] == {"adachi": 262, "konan": 352, "muroran": 333, "nagakute": 66}
    assert source["captured_utc_range"] is None and source["reviewers"] is None  # no graded.csv


def test_the_held_out_tree_is_what_model_evaluate_reads(tmp_path: Path) -> None:
    graded = read_graded([GRADED])
    _, held = split_holdout(graded, "nagakute")
    out = write_tree(held, tmp_path / "heldout")
    tree = {d.name: len(list(d.iterdir())) for d in out.iterdir()}
    assert tree == {"D00": 46, "D10": 1, "D20": 14, "D40": 0, "none": 5}
    again = read_graded([out], min_classes=1)
    assert {g.group for g in again.images} == {"nagakute"}  # the names keep their city


def _export_like(root: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A folder as `office export-graded` writes it: <finding id>.jpg and graded.csv."""
    crops = {label: sorted((GRADED / label).iterdir()) for label in ("D00", "D20", "none")}
    for label in ("D00", "D10", "D20", "D40", "none"):
        (root / label).mkdir(parents=True)
    with open(root / "graded.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["finding_id", "label", "review_verdict", "vehicle_grade", "office_grade",
                    "reviewed_by", "captured_at_utc", "vehicle_id"])  # fmt: skip
        for i, (fid, label, when, who) in enumerate(rows):
            shutil.copy(crops[label][i], root / label / f"{fid}.jpg")
            w.writerow([fid, label, "confirmed" if who else "", 1, 1, who, when, "chiba-07"])
    return root


def test_an_office_export_splits_by_capture_week_and_records_reviewers_and_dates(
    tmp_path: Path,
) -> None:
    rows = [
        ("f1", "D00", "2026-10-05T08:00:00Z", "ken"),  # week 41
        ("f2", "none", "2026-10-06T09:30:00Z", "anna"),
        ("f3", "D20", "2026-10-07T10:00:00Z", ""),
        ("f4", "D00", "2026-10-13T08:00:00Z", "ken"),  # week 42
        ("f5", "D20", "2026-10-14T08:00:00Z", "yuki"),
    ]
    graded = read_graded([_export_like(tmp_path / "export", rows)])
    assert dict(graded.groups()) == {"week-2026-W41": 3, "week-2026-W42": 2}
    source = graded.sources[0]
    assert source["captured_utc_range"] == ["2026-10-05T08:00:00Z", "2026-10-14T08:00:00Z"]
    assert source["reviewers"] == ["anna", "ken", "yuki"]
    assert source["images_per_type"] == {"D00": 2, "D20": 2, "none": 1}
    holdout = choose_holdout(graded, None)
    assert holdout == "week-2026-W42"  # closest to a fifth, and the rest keeps three classes
    train, held = split_holdout(graded, holdout)
    assert {g.path.stem for g in held} == {"f4", "f5"}
    assert {g.path.stem for g in train} == {"f1", "f2", "f3"}


def test_no_group_is_held_out_when_none_can_be_spared(tmp_path: Path) -> None:
    rows = [("f1", "D00", "2026-10-05T08:00:00Z", "ken"), ("f2", "D20", "2026-10-13T08:00:00Z", "")]
    graded = read_graded([_export_like(tmp_path / "export", rows)])
    assert choose_holdout(graded, None) is None  # either week alone shows one class
    train, held = split_holdout(graded, None)
    assert len(train) == 2 and held == []
