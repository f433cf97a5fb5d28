"""Decoding model outputs into graded damages, per the manifest (hand-made output maps)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from edge.grading.decode import apply_grade_rules, crack_coverage, decode, frame_grade
from edge.grading.manifest import ClassSpec, InputSpec, ModelManifest, OutputSpec
from edge.types import Damage


def _manifest(thresholds: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)) -> ModelManifest:
    grades = (1, 1, 2, 3)
    return ModelManifest(
        name="hand",
        version="1",
        created_utc=datetime(2026, 1, 1, tzinfo=UTC),
        file="hand-1.onnx",
        sha256="0" * 64,
        file_bytes=1,
        precision="fp32",
        input=InputSpec(width=64, height=64, mean=(0, 0, 0), std=(1, 1, 1)),
        output=OutputSpec(stride=8),
        classes=tuple(
            ClassSpec(code=c, name_en=c, name_ja=c, threshold=t, grade=g)
            for c, t, g in zip(("D00", "D10", "D20", "D40"), thresholds, grades, strict=True)
        ),
    )


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_one_peak_becomes_one_pothole_with_the_box_worked_out_by_hand() -> None:
    heat = np.full((4, 8, 8), -10.0, np.float32)
    heat[3, 2, 5] = _logit(0.9)  # pothole peak at row 2, column 5
    heat[3, 2, 4] = _logit(0.6)  # a neighbour below the peak: not a separate finding
    box = np.zeros((4, 8, 8), np.float32)
    # distances exp(raw) * stride: left 8 px, top 16 px, right 8 px, bottom 4 px
    box[:, 2, 5] = [0.0, math.log(2), 0.0, math.log(0.5)]
    damages = decode(heat, box, _manifest())
    assert len(damages) == 1
    d = damages[0]
    assert d.type_code == "D40" and d.grade == 3
    assert d.score == pytest.approx(0.9, abs=1e-5)
    # centre: ((5 + 0.5) / 8, (2 + 0.5) / 8) = (0.6875, 0.3125); 64 px input
    assert d.box_norm == pytest.approx(
        (0.6875 - 8 / 64, 0.3125 - 16 / 64, 0.6875 + 8 / 64, 0.3125 + 4 / 64)
    )


def test_class_thresholds_come_from_the_manifest() -> None:
    heat = np.full((4, 8, 8), -10.0, np.float32)
    heat[0, 1, 1] = _logit(0.4)
    box = np.zeros((4, 8, 8), np.float32)
    assert decode(heat, box, _manifest((0.5, 0.5, 0.5, 0.5))) == []
    found = decode(heat, box, _manifest((0.3, 0.5, 0.5, 0.5)))
    assert [d.type_code for d in found] == ["D00"]


def test_boxes_are_clipped_to_the_frame() -> None:
    heat = np.full((4, 8, 8), -10.0, np.float32)
    heat[2, 0, 0] = _logit(0.8)
    box = np.full((4, 8, 8), 3.0, np.float32)  # e^3 * 8 ≈ 160 px each side on a 64 px input
    (d,) = decode(heat, box, _manifest())
    assert d.box_norm == (0.0, 0.0, 1.0, 1.0)


def test_wrong_output_shape_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="4 classes"):
        decode(np.zeros((3, 8, 8)), np.zeros((4, 8, 8)), _manifest())


def test_linear_cracks_over_a_large_share_need_repair() -> None:
    manifest = _manifest()
    small = [Damage("D00", 0.9, (0.0, 0.0, 0.2, 0.2), 1)]
    assert frame_grade(apply_grade_rules(small, manifest)) == 1
    # Two crack boxes covering 0.5 × 0.5 + 0.5 × 0.5 = 50 % of the frame (rule: ≥ 30 %).
    wide = [
        Damage("D00", 0.9, (0.0, 0.0, 0.5, 0.5), 1),
        Damage("D10", 0.6, (0.5, 0.5, 1.0, 1.0), 1),
    ]
    assert crack_coverage(wide, ("D00", "D10")) == pytest.approx(0.5)
    graded = apply_grade_rules(wide, manifest)
    assert [d.grade for d in graded] == [2, 2]
    assert frame_grade(graded) == 2


def test_frame_grade_is_the_highest_finding_grade() -> None:
    assert frame_grade([]) == 0
    assert (
        frame_grade([Damage("D00", 0.5, (0, 0, 1, 1), 1), Damage("D40", 0.5, (0, 0, 1, 1), 3)]) == 3
    )


def test_overlapping_peaks_of_one_crack_are_suppressed_per_type() -> None:
    from edge.grading.decode import suppress_overlaps

    strong = Damage("D00", 0.9, (0.40, 0.10, 0.50, 0.60), 1)
    along = Damage("D00", 0.6, (0.40, 0.20, 0.50, 0.70), 1)  # IoU 0.4/0.6 = 0.67 with strong
    apart = Damage("D00", 0.5, (0.70, 0.10, 0.80, 0.60), 1)
    assert suppress_overlaps([strong, along, apart], 0.3) == [strong, apart]
    assert suppress_overlaps([strong, along, apart], None) == [strong, along, apart]
    assert suppress_overlaps([strong, along], 0.7) == [strong, along]  # below the limit: kept
