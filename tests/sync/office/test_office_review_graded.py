"""`roadpatrol office export-graded`: the office's graded images as the tree that
`roadpatrol model evaluate --folders` reads, checked with the shipped model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import REPO
from support.office_review import NO_IMAGE, ReceivedOffice, apply_reviews, cli

EXE = str(Path(sys.executable).with_name("roadpatrol"))
LABELS = ("D00", "D10", "D20", "D40", "none")


def _pixels(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _tree(out: Path) -> dict[str, set[str]]:
    return {d.name: {p.stem for p in d.iterdir()} for d in out.iterdir() if d.is_dir()}


def _export(capsys: pytest.CaptureFixture[str], office: ReceivedOffice, out: Path, *args: str):
    rc, stdout, err = cli(
        capsys, "office", "export-graded", "--db", office.db,
        "--images", str(office.office_dir / "images"), "--out", str(out), *args,
    )  # fmt: skip
    assert rc == 0, err
    return json.loads(stdout)


@pytest.mark.slow
def test_graded_tree_follows_the_reviews_and_model_evaluate_reads_it(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ids = apply_reviews(capsys, office)
    out = tmp_path / "graded"
    summary = _export(capsys, office, out)
    expected = {
        "none": {ids[0], ids[1]},  # not damage
        "D40": {ids[2], ids[4]},  # corrected to D40; a crack and a pothole: the pothole's grade
        "D10": {ids[3]},  # corrected to D00+D10 at grade 1: the tie goes to D10
        "D20": {ids[6]},  # confirmed
        "D00": {ids[7]},  # unreviewed: the vehicle's label
    }
    assert _tree(out) == expected  # ids[5] was sent without an image
    assert summary["folders"] == {k: len(v) for k, v in expected.items()}
    assert summary["images"] == 7 and summary["skipped"] == {"no_image": 1, "no_type": 0}
    assert ids[NO_IMAGE] not in set().union(*expected.values())
    for label, members in expected.items():
        for fid in members:
            exported = out / label / f"{fid}.jpg"
            # The vehicle adds its EXIF geotag to the frame: compare what the pictures show.
            assert np.array_equal(_pixels(exported.read_bytes()), _pixels(office.jpegs[fid]))
            source = office.office_dir / "images" / "veh-rev" / f"{fid}.jpg"
            assert exported.stat().st_ino == source.stat().st_ino  # hard link, same fs
    assert summary["linked"] == 7 and summary["copied"] == 0
    index = list(csv.DictReader((out / "graded.csv").open(encoding="utf-8")))
    assert {r["finding_id"]: r["label"] for r in index} == {
        fid: label for label, members in expected.items() for fid in members
    }
    # When and by which vehicle each was captured: `model adapt` holds out by capture week
    # and records the date range in the new model's provenance.
    captured = {f.id: f.captured_at_utc for f in office.findings}
    for r in index:
        assert r["vehicle_id"] == "veh-rev"
        assert datetime.fromisoformat(r["captured_at_utc"]) == captured[r["finding_id"]]

    result = subprocess.run(
        [EXE, "model", "evaluate", "--model", str(REPO / "models" / "road-damage-1.1.0.json"),
         "--folders", str(out), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == summary["images"]
    assert {c: report["per_class"][c]["support"] for c in LABELS} == summary["folders"]


def test_reviewed_only_and_since_narrow_the_export(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ids = apply_reviews(capsys, office)
    reviewed = _export(capsys, office, tmp_path / "reviewed", "--reviewed-only")
    assert ids[7] not in set().union(*_tree(tmp_path / "reviewed").values())
    assert reviewed["folders"]["D00"] == 0 and reviewed["images"] == 6
    recent = _export(capsys, office, tmp_path / "recent", "--reviewed-only", "--since",
                     "2024-05-01T07:00:00Z")  # fmt: skip
    tree = _tree(tmp_path / "recent")
    assert tree["D20"] == set() and recent["folders"]["D20"] == 0  # ids[6] is a month old
    assert tree["D40"] == {ids[2], ids[4]} and recent["images"] == 5
    # A re-review moves the image at the next export.
    rc, _, err = cli(capsys, "office", "review", "--db", office.db,
                     ids[4], "--not-damage")  # fmt: skip
    assert rc == 0, err
    _export(capsys, office, tmp_path / "again", "--reviewed-only")
    assert ids[4] in _tree(tmp_path / "again")["none"]


def test_export_graded_refuses_a_used_folder_and_names_bad_arguments(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = office.db
    images = str(office.office_dir / "images")
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("a technician's notes")
    for args, named in (
        (["--images", images, "--out", str(used)], str(used)),
        (["--images", str(tmp_path / "nope"), "--out", str(tmp_path / "x")], "nope"),
        (["--images", images, "--out", str(tmp_path / "y"), "--since", "May"], "'May'"),
    ):
        rc, _, err = cli(capsys, "office", "export-graded", "--db", db, *args)
        assert rc == 2 and named in err, (args, err)
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not list(tmp_path.glob(".*partial*"))
