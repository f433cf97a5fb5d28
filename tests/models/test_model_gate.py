"""`roadpatrol model compare BASE NEW --gate`: both models side by side, exit 1 when NEW is worse
on the RDD split or on an office folder, and the default_for_vehicles mark follows the gate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.grading.manifest import load_manifest
from edge.model_store.shipped import default_model_package
from models.adapt.graded import image_digest

from support.adapt import graded_crops, rdd_folders, tiny_voc
from support.model_store import SHIPPED_INT8, copy_package

EXE = str(Path(sys.executable).with_name("roadpatrol"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gate-data")
    voc = tiny_voc(root / "voc", train=0, val=24)
    folder = graded_crops(root / "heldout", 6, ("adachi", "konan"), ("D00", "D20", "none"))
    return voc, folder


def _models(tmp_path: Path, **changes: object) -> tuple[Path, Path]:
    """The shipped INT8 package as the base (marked default) and a variant as NEW, together in
    one models folder."""
    models = tmp_path / "models"
    base = copy_package(SHIPPED_INT8, models, default_for_vehicles=True)
    new = copy_package(SHIPPED_INT8, models, version="1.1.9", default_for_vehicles=False, **changes)
    return base, new


def _gate(base: Path, new: Path, voc: Path, *folders: Path) -> subprocess.CompletedProcess[str]:
    argv = [EXE, "model", "compare", str(base), str(new), "--voc", str(voc), "--split", "val",
            "--gate", "--threads", "1"]  # fmt: skip
    for f in folders:
        argv += ["--folders", str(f)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def _classes(**per_code: tuple[float, float]) -> list[dict[str, object]]:
    classes = [c.model_dump() for c in load_manifest(SHIPPED_INT8).classes]
    for c in classes:
        if c["code"] in per_code:
            c["threshold"], c["image_threshold"] = per_code[str(c["code"])]
    return classes


@pytest.mark.slow
def test_a_model_no_worse_than_the_base_passes_and_becomes_the_only_default(
    tmp_path: Path, data: tuple[Path, Path]
) -> None:
    voc, folder = data
    base, new = _models(tmp_path)  # the same network: every delta is zero
    result = _gate(base, new, voc, folder)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "A = road-damage-1.1.0   B = road-damage-1.1.9" in out
    assert "Δ +0.0000" in out and "grade  frames" in out  # side by side, per class and grade
    assert f"{folder} (36 images): office macro-F1 over D00, D20, none" in out
    assert "gate: passed; road-damage-1.1.9 is now marked default_for_vehicles" in out
    assert load_manifest(new).default_for_vehicles
    assert not load_manifest(base).default_for_vehicles  # exactly one default in the folder
    assert default_model_package(base.parent) == new
    gate = load_manifest(new).metrics["gate"]
    assert gate["passed"] is True and gate["base"] == "road-damage-1.1.0"
    assert gate["rdd"]["box_macro_f1"] == 0.0 and gate["folders"][0]["folder"] == "heldout"


@pytest.mark.slow
def test_a_box_regression_fails_the_gate_and_leaves_the_default_alone(
    tmp_path: Path, data: tuple[Path, Path]
) -> None:
    voc, _ = data
    # Box thresholds of 0.95: the same network now misses most boxes.
    base, new = _models(
        tmp_path, classes=_classes(**{c: (0.95, 0.3) for c in ("D00", "D10", "D20", "D40")})
    )
    result = _gate(base, new, voc)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gate: FAILED: RDD val box macro-F1 down" in result.stdout
    assert "road-damage-1.1.9 is not marked default_for_vehicles" in result.stdout
    assert not load_manifest(new).default_for_vehicles
    assert load_manifest(base).default_for_vehicles and default_model_package(base.parent) == base
    gate = load_manifest(new).metrics["gate"]
    assert gate["passed"] is False and "box macro-F1 down" in gate["failures"][0]


@pytest.mark.slow
def test_a_regression_on_an_office_folder_is_named(tmp_path: Path, data: tuple[Path, Path]) -> None:
    voc, _ = data
    folder = rdd_folders(tmp_path / "frames", 10)  # whole frames the base grades well
    # NEW vetoes D20 unless its image head is all but certain: the D20 frames are lost.
    base, new = _models(tmp_path, classes=_classes(D20=(0.2, 0.999)))
    result = _gate(base, new, voc, folder)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"gate: FAILED: {folder}: office macro-F1 down") for line in lines)
    assert not load_manifest(new).default_for_vehicles and load_manifest(base).default_for_vehicles
    folders = load_manifest(new).metrics["gate"]["folders"]
    assert folders[0]["new_office_macro_f1"] < folders[0]["base_office_macro_f1"] - 0.01


@pytest.mark.slow
def test_misuse_exits_2(tmp_path: Path, data: tuple[Path, Path]) -> None:
    voc, _ = data
    base, new = _models(tmp_path)
    (tmp_path / "bad" / "D99").mkdir(parents=True)
    result = _gate(base, new, voc, tmp_path / "bad")
    assert result.returncode == 2 and "unknown sub-folder(s) D99" in result.stderr
    assert load_manifest(base).default_for_vehicles and not load_manifest(new).default_for_vehicles


def test_of_several_marked_packages_the_highest_version_is_the_default(tmp_path: Path) -> None:
    models = tmp_path / "models"
    copy_package(SHIPPED_INT8, models, default_for_vehicles=True)  # 1.1.0
    # 1.10.0 sorts before 1.1.0 by file name
    newer = copy_package(SHIPPED_INT8, models, version="1.10.0", default_for_vehicles=True)
    copy_package(SHIPPED_INT8, models, version="1.9.0", default_for_vehicles=False)
    assert default_model_package(models) == newer


def _trained_on(**provenance: object) -> dict[str, object]:
    return {**(load_manifest(SHIPPED_INT8).training or {}), **provenance}


@pytest.mark.slow
def test_a_folder_of_images_new_was_trained_on_fails_the_gate(
    tmp_path: Path, data: tuple[Path, Path]
) -> None:
    voc, folder = data
    # The same crops under other names: neither a city nor a week gives them away, only their
    # bytes (five of them are among NEW's recorded training images).
    renamed = tmp_path / "renamed"
    crops = sorted(folder.rglob("*.png"))
    for n, crop in enumerate(crops):
        (renamed / crop.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(crop, renamed / crop.parent.name / f"finding-{n:03d}.png")
    trained = [image_digest(p) for p in crops[:5]]
    base, new = _models(tmp_path, training=_trained_on(graded_train_sha256_16=trained))
    result = _gate(base, new, voc, renamed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"gate: FAILED: {renamed}: 5 of its 36 images were in road-damage-1.1.9's training "
        "(5 identical files): not held out" in result.stdout
    )
    assert "note: 5 of its 36 images were in road-damage-1.1.9's training" in result.stdout
    assert not load_manifest(new).default_for_vehicles and load_manifest(base).default_for_vehicles
    assert load_manifest(new).metrics["gate"]["folders"][0]["new_trained_on_images"] == 5


@pytest.mark.slow
def test_an_adapted_model_passes_only_on_a_folder_it_never_saw(
    tmp_path: Path, data: tuple[Path, Path]
) -> None:
    voc, folder = data  # 18 Adachi and 18 Konan crops
    # A package adapted before digests were recorded: Konan trained on, Adachi held out. Its
    # network and thresholds are the base's, so only the office evidence can fail it.
    older = _trained_on(
        graded_sources=[{"groups": {"adachi": 262, "konan": 237}}], heldout_group="adachi"
    )
    base, new = _models(tmp_path, training=older)
    result = _gate(base, new, voc, folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"gate: FAILED: {folder}: 18 of its 36 images were in road-damage-1.1.9's training "
        "(group(s) konan): not held out" in result.stdout
    )
    no_evidence = "but no office folder held out from its training was given"
    assert no_evidence in result.stdout  # a folder it trained on is no evidence
    alone = _gate(base, new, voc)  # RDD alone says nothing about Japanese roads
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert (
        "gate: FAILED: road-damage-1.1.9 was adapted on office-graded images, " + no_evidence
        in alone.stdout
    )
    assert not load_manifest(new).default_for_vehicles and load_manifest(base).default_for_vehicles
    held_out_only = tmp_path / "adachi-only"
    for crop in folder.rglob("*_adachi_*.png"):
        (held_out_only / crop.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(crop, held_out_only / crop.parent.name / crop.name)
    passed = _gate(base, new, voc, held_out_only)  # the city it never saw: a fair folder
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "not held out" not in passed.stdout and "note:" not in passed.stdout
    assert load_manifest(new).default_for_vehicles
    # A package never adapted (1.1.0's kind) needs no office folder.
    plain_base, plain_new = _models(tmp_path / "plain")
    assert _gate(plain_base, plain_new, voc).returncode == 0
