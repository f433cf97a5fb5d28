"""The shipped packages: verified, reproducing the figures their manifests record, the INT8
default staying close to its FP32 export on real road frames, and the adapted packages (1.2.0,
2.1.0 and the default 2.2.0) recording where their teacher data came from and what they score on
the held-out city."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.grading.decode import sigmoid
from edge.grading.grader import Grader
from edge.grading.manifest import load_manifest
from edge.model_store.shipped import default_model_package
from models.evaluate import collect_voc, cross_tuned, manifest_thresholds, voc_report

from support.model_data import RDD_TRAIN, SHIPPED_MODELS, real_frames

# The vehicles' default: 2.0.0 (1.2.0 fine-tuned at 320 px) adapted to the graded images, its
# image head fitted to the office's verdicts as one type or none (issue 9).
INT8 = SHIPPED_MODELS / "road-damage-2.2.0.json"
FP32 = SHIPPED_MODELS / "road-damage-fp32-2.2.0.json"
# The default before it: the same recipe with the verdicts fitted one-vs-rest.
V210_INT8 = SHIPPED_MODELS / "road-damage-2.1.0.json"
V210_FP32 = SHIPPED_MODELS / "road-damage-fp32-2.1.0.json"
V120_INT8 = SHIPPED_MODELS / "road-damage-1.2.0.json"
V120_FP32 = SHIPPED_MODELS / "road-damage-fp32-1.2.0.json"
PREVIOUS_INT8 = SHIPPED_MODELS / "road-damage-1.1.0.json"
PREVIOUS_FP32 = SHIPPED_MODELS / "road-damage-fp32-1.1.0.json"
GRADED = RDD_TRAIN.parents[1] / "office_graded_japan"
# Issue 13's step between: 1.2.0 fine-tuned at 320 px on RDD, before adaptation.
CANDIDATE_INT8 = SHIPPED_MODELS / "road-damage-2.0.0.json"
CANDIDATE_FP32 = SHIPPED_MODELS / "road-damage-fp32-2.0.0.json"


def _tolerances(package: Path) -> tuple[float, float]:
    """(macro figures, one class's F1) allowed between a recorded and a reproduced figure.
    FP32 reproduces to a hair. INT8 does not across CPUs: onnxruntime's uint8 × int8 kernels
    take other code paths on other instruction sets (with or without VNNI; AVX2-only CPUs can
    saturate intermediate sums), and the shipped figures were recorded on more than one
    machine (2.2.0's on an AVX2-only AMD EPYC, the earlier ones on the machines of earlier
    sessions). Measured on that EPYC against the earlier records: up to 0.012 on RDD macro-F1,
    0.021 on the 262 held-out crops' office macro-F1, 0.028 on one class of them (one D20 crop
    of 33 moves its F1 by about 0.02). The model's own bars are asserted too, with no slack."""
    return (0.01, 0.02) if load_manifest(package).precision == "fp32" else (0.03, 0.05)


def test_the_vehicles_default_is_the_int8_package() -> None:
    assert default_model_package() == INT8
    for other in (PREVIOUS_INT8, V120_INT8, CANDIDATE_INT8, V210_INT8):  # one default only
        assert not load_manifest(other).default_for_vehicles
    manifest = load_manifest(INT8)
    assert manifest.precision == "int8" and manifest.quantization is not None
    assert manifest.quantization["format"] == "QDQ"
    assert INT8.with_suffix(".onnx").stat().st_size <= 8 * 1024 * 1024
    assert {c.code: c.grade for c in manifest.classes} == {"D00": 1, "D10": 1, "D20": 2, "D40": 3}
    assert {c.code: c.name_ja for c in manifest.classes}["D40"] == "ポットホール"


@pytest.mark.slow
@pytest.mark.parametrize(
    "package",
    [
        INT8,
        FP32,
        V210_INT8,
        V210_FP32,
        V120_INT8,
        V120_FP32,
        PREVIOUS_INT8,
        PREVIOUS_FP32,
        CANDIDATE_INT8,
        CANDIDATE_FP32,
    ],
    ids=[
        "int8",
        "fp32",
        "2.1.0-int8",
        "2.1.0-fp32",
        "1.2.0-int8",
        "1.2.0-fp32",
        "1.1.0-int8",
        "1.1.0-fp32",
        "2.0.0-int8",
        "2.0.0-fp32",
    ],
)
def test_recorded_validation_figures_are_reproduced(package) -> None:  # type: ignore[no-untyped-def]
    manifest = load_manifest(package)
    tol, _ = _tolerances(package)
    grader = Grader(package, threads=2)
    results = collect_voc(grader, RDD_TRAIN, "val")
    report = voc_report(results, manifest, manifest_thresholds(grader))
    assert report["images"] == manifest.metrics["images"] == 400
    assert report["macro_f1"] == pytest.approx(manifest.metrics["macro_f1"], abs=tol)
    assert report["box_macro_f1"] == pytest.approx(manifest.metrics["box_macro_f1"], abs=tol)
    assert report["macro_f1"] >= 0.95 and report["box_macro_f1"] >= 0.55  # the model's bars
    # The honest estimate: thresholds tuned on one half of the split, scored on the other.
    cross, recorded = cross_tuned(results, manifest), manifest.metrics["cross_tuned"]
    assert cross["images"] == recorded["images"] == 400
    assert cross["macro_f1"] == pytest.approx(recorded["macro_f1"], abs=tol)
    assert cross["box_macro_f1"] == pytest.approx(recorded["box_macro_f1"], abs=tol)
    assert cross["box_macro_f1"] <= report["box_macro_f1"] + 0.01  # no better than tuned-on-all


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fp32_package", "int8_package"),
    [(FP32, INT8), (V120_FP32, V120_INT8), (CANDIDATE_FP32, CANDIDATE_INT8)],
    ids=["default", "1.2.0", "2.0.0"],
)
def test_int8_stays_close_to_fp32_on_real_frames(fp32_package: Path, int8_package: Path) -> None:
    fp32, int8 = Grader(fp32_package, threads=1), Grader(int8_package, threads=1)
    agree = total = 0
    for frame in real_frames(20):
        heat_f, _, _ = fp32.raw_outputs(frame)
        heat_q, _, _ = int8.raw_outputs(frame)
        diff = np.abs(sigmoid(heat_f) - sigmoid(heat_q))
        assert diff.mean() < 0.02 and diff.max() < 0.4
        types_f = {d.type_code for d in fp32.detect(frame)[0]}
        types_q = {d.type_code for d in int8.detect(frame)[0]}
        for code in ("D00", "D10", "D20", "D40"):
            agree += (code in types_f) == (code in types_q)
            total += 1
    assert agree / total >= 0.85


@pytest.mark.slow
@pytest.mark.parametrize(
    ("package", "base", "gate_base"),
    [
        (INT8, CANDIDATE_INT8, "road-damage-2.1.0"),
        (V210_INT8, CANDIDATE_INT8, "road-damage-1.2.0"),
        (V120_INT8, PREVIOUS_INT8, "road-damage-1.1.0"),
    ],
    ids=["default-2.2.0", "2.1.0", "1.2.0"],
)
def test_the_adapted_packages_name_their_teacher_data_and_reproduce_their_held_out_figures(
    package: Path, base: Path, gate_base: str
) -> None:
    from models.adapt.graded import read_graded, split_holdout
    from models.adapt.tuning import collect_graded, folder_report

    manifest = load_manifest(package)
    training = manifest.training
    assert training["adapted_from"]["package"] == load_manifest(base).model_id
    assert training["adapted_from"]["sha256"] == load_manifest(base).sha256
    (source,) = training["graded_sources"]
    assert Path(source["folder"]).name == "office_graded_japan"
    assert source["images_per_type"] == {"D00": 610, "D10": 18, "D20": 228, "D40": 23, "none": 134}
    assert training["heldout_group"] == "adachi" and training["graded_heldout_images"] == 262
    gate = manifest.metrics["gate"]
    assert gate["passed"] is True and gate["base"] == gate_base
    _, held = split_holdout(read_graded([GRADED]), "adachi")
    report = folder_report(collect_graded(Grader(package, threads=2), held), manifest)
    recorded = manifest.metrics["office_heldout"]
    assert report["images"] == recorded["images"] == 262
    assert report["office_macro_labels"] == ["D00", "D20", "none"]
    macro_tol, class_tol = _tolerances(package)
    assert report["office_macro_f1"] == pytest.approx(recorded["office_macro_f1"], abs=macro_tol)
    for label in ("D00", "D20", "none"):
        assert report["per_class"][label]["f1"] == pytest.approx(
            recorded["per_class"][label]["f1"], abs=class_tol
        )


def test_the_320px_fine_tune_finds_more_boxes_and_potholes_than_1_2_0() -> None:
    candidate, default = load_manifest(CANDIDATE_INT8), load_manifest(V120_INT8)
    assert (candidate.input.width, candidate.input.height) == (320, 320)
    assert not candidate.default_for_vehicles
    assert candidate.training["init_package"].endswith("road-damage-fp32-1.2.0.json")
    assert candidate.training["fp32_package"] == "road-damage-fp32-2.0.0"
    assert candidate.quantization is not None and candidate.quantization["format"] == "QDQ"
    got, base = candidate.metrics, default.metrics
    assert got["box_macro_f1"] > base["box_macro_f1"] + 0.02
    assert got["box_per_class"]["D40"]["f1"] > base["box_per_class"]["D40"]["f1"] + 0.1
    assert got["cross_tuned"]["box_macro_f1"] > base["cross_tuned"]["box_macro_f1"]
    assert got["macro_f1"] >= 0.96
    fp32 = load_manifest(CANDIDATE_FP32).metrics
    assert abs(got["box_macro_f1"] - fp32["box_macro_f1"]) <= 0.02  # INT8 keeps the gain
