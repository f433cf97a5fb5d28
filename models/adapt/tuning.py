"""Thresholds for an adapted model: the RDD validation split and the office's graded images.

A vehicle reports the strongest finding of a frame, so on graded images the thresholds of all
types interact (raising D00's lets a weaker D20 peak win). We start from the per-class RDD
optimum (image-level F1 + box-level F1, as `model tune` does), then, one class at a time, pick
the pair of thresholds maximising that class's RDD figures plus the macro-F1 on the graded
*training* images (never the held-out group).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.grading.decode import candidates, select, sigmoid
from edge.grading.grader import Grader
from edge.grading.manifest import ModelManifest
from models.adapt.graded import GradedImage
from models.evaluate import ImageResult, Thresholds, tally, tune_thresholds
from models.metrics import confusion_report

NONE_LABEL = "none"
MIN_SCORED_IMAGES = 10  # labels with fewer images in a folder are shown but not averaged


@dataclass(frozen=True)
class FolderResult:
    label: str
    result: ImageResult


def collect_graded(grader: Grader, images: list[GradedImage]) -> list[FolderResult]:
    import cv2

    out = []
    for g in images:
        image = cv2.imread(str(g.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{g.path}: not a readable image")
        started = time.perf_counter_ns()
        heat, box, logits = grader.raw_outputs(image)
        peaks = candidates(heat, box, grader.manifest, 0.05)
        probs = sigmoid(logits) if logits is not None else None
        ms = (time.perf_counter_ns() - started) / 1e6
        out.append(FolderResult(g.label, ImageResult((), tuple(peaks), probs, ms)))
    return out


def predicted(r: ImageResult, manifest: ModelManifest, thresholds: Thresholds | None) -> str:
    chosen = select(list(r.peaks), r.image_probs, manifest, thresholds)
    return max(chosen, key=lambda d: d.score).type_code if chosen else NONE_LABEL


def scored_labels(labels: list[str]) -> tuple[str, ...]:
    """The labels a folder's macro-F1 averages: those with at least MIN_SCORED_IMAGES images
    (``none`` included: calling faded markings damage is the error the office sees most)."""
    counts = {x: labels.count(x) for x in set(labels)}
    order = ("D00", "D10", "D20", "D40", NONE_LABEL)
    return tuple(x for x in order if counts.get(x, 0) >= MIN_SCORED_IMAGES)


def folder_report(
    results: list[FolderResult], manifest: ModelManifest, thresholds: Thresholds | None = None
) -> dict[str, Any]:
    pairs = [(r.label, predicted(r.result, manifest, thresholds)) for r in results]
    labels = (*manifest.class_codes(), NONE_LABEL)
    report = confusion_report(pairs, labels)
    per_class = report["per_class"]
    assert isinstance(per_class, dict)
    scored = scored_labels([r.label for r in results])
    office = sum(float(per_class[x]["f1"]) for x in scored) / len(scored) if scored else 0.0
    return {
        "office_macro_f1": round(office, 4),
        "office_macro_labels": list(scored),
        "macro_f1": report["macro_f1"],
        "per_class": per_class,
        "confusion": report["confusion"],
        "images": len(results),
        "latency_ms_median": round(statistics.median(r.result.latency_ms for r in results), 3)
        if results
        else None,
    }


def _folder_score(results: list[FolderResult], manifest: ModelManifest, th: Thresholds) -> float:
    return float(folder_report(results, manifest, th)["office_macro_f1"])


def tune_with_graded(
    rdd: list[ImageResult], graded: list[FolderResult], manifest: ModelManifest
) -> Thresholds:
    """Per class, (box, image) thresholds maximising its RDD image + box F1 plus the graded
    training images' macro-F1, the other classes held at their current thresholds."""
    best = tune_thresholds(rdd, manifest)
    grid = [round(0.05 * i, 2) for i in range(1, 19)]
    for code in manifest.class_codes():

        def score(pair: tuple[float, float | None], code: str = code) -> float:
            t = tally(rdd, manifest, {code: pair})
            trial = {**best, code: pair}
            return t.image[code].f1 + t.box[code].f1 + _folder_score(graded, manifest, trial)

        image_grid: list[float | None] = list(grid) if best[code][1] is not None else [None]
        best[code] = max(((b, i) for b in grid[::2] for i in image_grid), key=score)
    return best


def thresholds_array(th: Thresholds) -> dict[str, list[float | None]]:
    return {c: [float(np.round(b, 2)), i] for c, (b, i) in th.items()}
