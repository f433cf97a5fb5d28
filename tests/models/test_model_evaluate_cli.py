"""`roadpatrol model evaluate --folders` and `--voc` as a technician runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.training.dataset import load_voc_dir, split

from support.model_data import RDD_TRAIN, SHIPPED_MODELS

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))
CODES = ("D00", "D10", "D20", "D40")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "model", *args], capture_output=True, text=True, timeout=300)


def test_folders_mode_reports_per_class_figures_and_a_confusion_matrix(tmp_path: Path) -> None:
    _, val = split(load_voc_dir(RDD_TRAIN, CODES))
    per_class = 3
    for code in CODES:  # validation images showing only this damage type
        folder = tmp_path / code
        folder.mkdir()
        only = [s for s in val if {b.code for b in s.boxes} == {code}][:per_class]
        assert len(only) == per_class
        for s in only:
            shutil.copy(s.image_path, folder / s.image_path.name)
    result = _run(
        "evaluate",
        "--model",
        str(SHIPPED_MODELS / "road-damage-1.1.0.json"),
        "--folders",
        str(tmp_path),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 4 * per_class and report["box_macro_f1"] is None
    assert {c: report["per_class"][c]["support"] for c in CODES} == dict.fromkeys(CODES, per_class)
    confusion = report["confusion"]
    assert all(sum(confusion[c].values()) == per_class for c in CODES)
    f1s = [report["per_class"][c]["f1"] for c in CODES]
    assert report["macro_f1"] == pytest.approx(sum(f1s) / 4, abs=1e-3)
    assert sum(confusion[c][c] for c in CODES) >= 8  # the shipped model gets most of them


def test_misuse_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "D99").mkdir()
    model = str(SHIPPED_MODELS / "road-damage-1.1.0.json")
    result = _run("evaluate", "--model", model, "--folders", str(tmp_path))
    assert result.returncode == 2 and "unknown: D99" in result.stderr
    result = _run("evaluate", "--model", model)
    assert result.returncode == 2 and "--voc DIR or --folders DIR" in result.stderr
    result = _run("evaluate", "--model", str(tmp_path / "missing.json"), "--voc", str(RDD_TRAIN))
    assert result.returncode == 2 and "manifest not found" in result.stderr
