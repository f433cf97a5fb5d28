"""`roadpatrol model adapt` refuses bad graded folders before it writes anything: one line that
names the folder or the file, exit 2, no package and no run folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.model_data import RDD_TRAIN, SHARED_DATA, SHIPPED_MODELS

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))
GRADED = SHARED_DATA / "office_graded_japan"
BASE = SHIPPED_MODELS / "road-damage-1.1.0.json"


def _graded_copy(root: Path, per_label: dict[str, int]) -> Path:
    """A small graded folder of real office crops (the first N of each label)."""
    for label, n in per_label.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for src in sorted((GRADED / label).iterdir())[:n]:
            shutil.copy(src, root / label / src.name)
    return root


def _adapt(
    tmp_path: Path, *graded: Path, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    argv = [EXE, "model", "adapt", "--base", str(BASE), "--voc", str(RDD_TRAIN), "--version",
            "9.9.9", "--out", str(tmp_path / "out"), "--run", str(tmp_path / "run")]  # fmt: skip
    for g in graded:
        argv += ["--graded", str(g)]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=120)


def _refused(tmp_path: Path, result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "export"
    for label in ("D00", "D10", "D20", "D40", "none"):  # export-graded of an office with nothing
        (empty / label).mkdir(parents=True)
    _refused(tmp_path, _adapt(tmp_path, empty), str(empty), "no images")
    bare = tmp_path / "bare"
    bare.mkdir()
    _refused(tmp_path, _adapt(tmp_path, bare), str(bare), "no images")
    _refused(tmp_path, _adapt(tmp_path, tmp_path / "missing"), "missing", "no such folder")


def test_unknown_sub_folders_are_named(tmp_path: Path) -> None:
    graded = _graded_copy(tmp_path / "g", {"D00": 2, "none": 2})
    (graded / "D30").mkdir()
    (graded / "potholes").mkdir()
    _refused(tmp_path, _adapt(tmp_path, graded), str(graded), "D30", "potholes")


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff not really a jpeg"], ids=["empty", "junk"])
def test_an_unreadable_image_is_named(tmp_path: Path, content: bytes) -> None:
    graded = _graded_copy(tmp_path / "g", {"D00": 2, "D20": 2, "none": 2})
    bad = graded / "D20" / "D20_konan_broken.jpg"
    bad.write_bytes(content)
    _refused(tmp_path, _adapt(tmp_path, graded), str(bad), "not a readable image")


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    graded = _graded_copy(tmp_path / "g", {"D00": 2, "none": 2})
    stray = graded / "none" / "notes.txt"
    stray.write_text("reviewed on Tuesday")
    _refused(tmp_path, _adapt(tmp_path, graded), str(stray), "not an image file")


def test_one_class_only_is_refused_even_across_folders(tmp_path: Path) -> None:
    one = _graded_copy(tmp_path / "a", {"D00": 3})
    _refused(tmp_path, _adapt(tmp_path, one), str(one), "every image is D00")
    two = _graded_copy(tmp_path / "b", {"D00": 2})
    _refused(tmp_path, _adapt(tmp_path, one, two), str(one), str(two), "at least two classes")


def test_a_holdout_that_leaves_one_class_for_training_is_refused(tmp_path: Path) -> None:
    graded = tmp_path / "g"
    for label, city in (("D00", "konan"), ("none", "adachi"), ("D20", "adachi")):
        (graded / label).mkdir(parents=True, exist_ok=True)
        src = next(p for p in sorted((GRADED / label).iterdir()) if f"_{city}_" in p.name)
        shutil.copy(src, graded / label / src.name)
    result = _adapt(tmp_path, graded, extra=("--holdout", "adachi"))
    _refused(tmp_path, result, "--holdout adachi", "one class only")
    result = _adapt(tmp_path, graded, extra=("--holdout", "sapporo"))
    _refused(tmp_path, result, "--holdout sapporo", "adachi (2)", "konan (1)")


def test_a_left_out_group_must_exist_not_be_the_held_out_one_and_leave_two_classes(
    tmp_path: Path,
) -> None:
    graded = tmp_path / "g"
    picks = (("D00", "konan"), ("D00", "muroran"), ("none", "adachi"), ("D20", "adachi"))
    for label, city in picks:
        (graded / label).mkdir(parents=True, exist_ok=True)
        src = next(p for p in sorted((GRADED / label).iterdir()) if f"_{city}_" in p.name)
        shutil.copy(src, graded / label / src.name)
    result = _adapt(tmp_path, graded, extra=("--leave-out", "sapporo"))
    _refused(tmp_path, result, "--leave-out sapporo", "adachi (2)", "konan (1)", "muroran (1)")
    result = _adapt(tmp_path, graded, extra=("--holdout", "konan", "--leave-out", "konan"))
    _refused(tmp_path, result, "--leave-out konan", "held-out")
    result = _adapt(tmp_path, graded, extra=("--leave-out", "adachi"))
    _refused(tmp_path, result, "--leave-out adachi", "D00 only")


def test_an_existing_package_of_that_version_is_not_overwritten(tmp_path: Path) -> None:
    graded = _graded_copy(tmp_path / "g", {"D00": 2, "none": 2})
    out = tmp_path / "out"
    out.mkdir()
    (out / "road-damage-9.9.9.json").write_text("{}")
    result = _adapt(tmp_path, graded)
    assert result.returncode == 2 and "road-damage-9.9.9.json exists" in result.stderr
    assert [p.name for p in out.iterdir()] == ["road-damage-9.9.9.json"]
    assert (out / "road-damage-9.9.9.json").read_text() == "{}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--train-from-block", "4"), "give 5 to 11"),
        (("--train-from-block", "16"), "give 5 to 11"),
        (("--train-from-block", "8", "--keep-boxes", "frozen"), "a frozen box head"),
    ],
    ids=["before-the-stride-8-tap", "past-the-last-block", "with-a-frozen-box-head"],
)
def test_a_trained_part_that_cannot_work_is_refused(
    tmp_path: Path, extra: tuple[str, ...], named: str
) -> None:
    graded = _graded_copy(tmp_path / "g", {"D00": 2, "none": 2})
    _refused(tmp_path, _adapt(tmp_path, graded, extra=extra), "--train-from-block", named)
