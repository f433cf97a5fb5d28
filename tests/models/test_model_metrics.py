"""Evaluation metrics on a small case worked out by hand."""

from __future__ import annotations

import pytest

from models.metrics import DetectionTally, Labelled, Scored, confusion_report, iou

from support import REPO


def test_iou_of_half_overlapping_squares() -> None:
    # Two unit squares shifted by half a side: intersection 0.5, union 1.5.
    assert iou((0, 0, 1, 1), (0.5, 0, 1.5, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_box_and_image_level_counts_by_hand() -> None:
    t = DetectionTally(("D00", "D40"))
    # Image 1: one pothole found well (IoU 0.81 ≥ 0.5: TP), one crack found in the wrong place
    # (IoU 0: FP for D00 and its ground truth is a miss), a duplicate pothole (FP).
    t.add(
        [Labelled("D40", (0.1, 0.1, 0.5, 0.5)), Labelled("D00", (0.6, 0.0, 0.7, 0.9))],
        [
            Scored("D40", 0.9, (0.1, 0.1, 0.46, 0.46)),
            Scored("D40", 0.5, (0.12, 0.12, 0.5, 0.5)),
            Scored("D00", 0.7, (0.0, 0.0, 0.05, 0.05)),
        ],
    )
    # Image 2: nothing there, a crack reported: image-level FP for D00, box-level FP.
    t.add([], [Scored("D00", 0.4, (0.2, 0.2, 0.3, 0.3))])
    # Image 3: a pothole missed entirely.
    t.add([Labelled("D40", (0.0, 0.0, 0.2, 0.2))], [])

    # Box level D40: TP 1 (image 1), FP 1 (duplicate), FN 1 (image 3) → P 1/2, R 1/2, F1 1/2.
    assert (t.box["D40"].tp, t.box["D40"].fp, t.box["D40"].fn) == (1, 1, 1)
    assert t.box["D40"].f1 == pytest.approx(0.5)
    # Box level D00: TP 0, FP 2, FN 1 → F1 0.
    assert (t.box["D00"].tp, t.box["D00"].fp, t.box["D00"].fn) == (0, 2, 1)
    assert t.box["D00"].f1 == 0.0
    assert t.macro_f1("box") == pytest.approx(0.25)
    # Image level D40: image 1 TP, image 3 FN → P 1, R 1/2, F1 2/3.
    assert (t.image["D40"].tp, t.image["D40"].fp, t.image["D40"].fn) == (1, 0, 1)
    assert t.image["D40"].f1 == pytest.approx(2 / 3)
    # Image level D00: image 1 TP (present and reported, place does not matter), image 2 FP.
    assert (t.image["D00"].tp, t.image["D00"].fp, t.image["D00"].fn) == (1, 1, 0)
    assert t.image["D00"].f1 == pytest.approx(2 / 3)
    assert t.macro_f1("image") == pytest.approx(2 / 3)
    assert t.images == 3


def test_stronger_detection_claims_the_box_first() -> None:
    t = DetectionTally(("D20",))
    truth = [Labelled("D20", (0.0, 0.0, 1.0, 1.0))]
    # The weaker one overlaps better, but the stronger is matched first (RDD protocol).
    t.add(truth, [Scored("D20", 0.3, (0, 0, 1, 1)), Scored("D20", 0.8, (0, 0, 0.8, 0.8))])
    assert (t.box["D20"].tp, t.box["D20"].fp) == (1, 1)


def test_confusion_report_by_hand() -> None:
    pairs = [("D00", "D00"), ("D00", "D10"), ("D10", "D10"), ("D40", "none"), ("none", "D40")]
    report = confusion_report(pairs, ("D00", "D10", "D40", "none"))
    per = report["per_class"]
    assert isinstance(per, dict)
    assert per["D00"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(0.6667, abs=1e-4),
        "support": 2,
    }
    assert per["D10"]["precision"] == 0.5 and per["D10"]["recall"] == 1.0
    assert per["D40"]["f1"] == 0.0
    # macro over the damage types only: (2/3 + 2/3 + 0) / 3
    assert report["macro_f1"] == pytest.approx(0.4444, abs=1e-4)
    confusion = report["confusion"]
    assert isinstance(confusion, dict)
    assert confusion["D00"]["D10"] == 1 and confusion["none"]["D40"] == 1


def test_cross_tuned_figures_score_each_half_with_the_other_halfs_thresholds() -> None:

    from edge.grading.manifest import load_manifest
    from edge.types import Damage
    from models.evaluate import ImageResult, cross_tuned, tally, tune_thresholds

    manifest = load_manifest(REPO / "models" / "road-damage-1.1.0.json")
    hole, elsewhere = (0.1, 0.1, 0.4, 0.4), (0.6, 0.6, 0.9, 0.9)

    def image(score: float, box: tuple[float, float, float, float], real: bool) -> ImageResult:
        truth = (Labelled("D40", hole),) if real else ()
        return ImageResult(truth, (Damage("D40", score, box, 3),), None, 1.0)

    # block=1: images 0 and 2 form half A, 1 and 3 half B.
    results = [
        image(0.9, hole, True),  # A: a clear pothole
        image(0.45, hole, True),  # B: a faint one
        image(0.5, elsewhere, False),  # A: a weak false alarm
        image(0.8, elsewhere, False),  # B: a strong false alarm
    ]
    # Tuned on A, the threshold lands just above 0.5 (0.55): on B it misses the faint pothole
    # and keeps the strong false alarm (TP 0, FP 1, FN 1). Tuned on B, the best it can do is
    # keep everything (0.05): on A, TP 1 and FP 1. Pooled: TP 1, FP 2, FN 1 → P 1/3, R 1/2.
    figures = cross_tuned(results, manifest, block=1)
    assert figures["images"] == 4
    assert figures["box_per_class_f1"]["D40"] == pytest.approx(0.4)
    # Tuned and scored on the same four images, it looks better than it is: a threshold
    # above 0.8 keeps only the clear pothole (TP 1, FN 1) → F1 2/3.
    on_all = tally(results, manifest, tune_thresholds(results, manifest))
    assert on_all.box["D40"].f1 == pytest.approx(2 / 3)
