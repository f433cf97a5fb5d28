"""`model evaluate` / `model compare`: a model package on labelled real images.

Runs on the vehicle runtime alone (onnxruntime + numpy), no torch: a technician can check a
model on any machine before shipping it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.grading.decode import candidates, select, sigmoid
from edge.grading.grader import Grader
from edge.grading.manifest import ModelManifest
from edge.types import Damage
from models.metrics import DetectionTally, Labelled, Scored, confusion_report
from models.training.dataset import Sample, load_voc_dir, split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
NONE_LABEL = "none"


@dataclass(frozen=True)
class ImageResult:
    truth: tuple[Labelled, ...]
    peaks: tuple[Damage, ...]  # every peak down to the collection floor, not yet selected
    image_probs: np.ndarray | None
    latency_ms: float


def _read(path: Path) -> Any:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image


def _voc_samples(grader: Grader, voc_dir: Path, subset: str) -> list[Sample]:
    samples = load_voc_dir(voc_dir, grader.manifest.class_codes())
    if subset != "all":
        train, val = split(samples)
        samples = val if subset == "val" else train
    if not samples:
        raise ValueError(f"{voc_dir}: no annotated images ({subset} split)")
    return samples


def collect_voc(
    grader: Grader, voc_dir: Path, subset: str = "all", floor: float = 0.05
) -> list[ImageResult]:
    """Every peak down to ``floor`` for each annotated image, so that thresholds can be applied
    (or tuned) afterwards without running the model again. Latency covers preprocessing,
    the session and decoding with the manifest's thresholds."""
    results = []
    for s in _voc_samples(grader, voc_dir, subset):
        image = _read(s.image_path)
        h, w = image.shape[:2]
        started = time.perf_counter_ns()
        heat, box, image_logits = grader.raw_outputs(image)
        peaks = candidates(heat, box, grader.manifest, floor)
        probs = sigmoid(image_logits) if image_logits is not None else None
        select(peaks, probs, grader.manifest)
        ms = (time.perf_counter_ns() - started) / 1e6
        truth = tuple(Labelled(b.code, (b.x0 / w, b.y0 / h, b.x1 / w, b.y1 / h)) for b in s.boxes)
        results.append(ImageResult(truth, tuple(peaks), probs, ms))
    return results


Thresholds = dict[str, tuple[float, float | None]]


def manifest_thresholds(grader: Grader) -> Thresholds:
    return {c.code: (c.threshold, c.image_threshold) for c in grader.manifest.classes}


def tally(
    results: list[ImageResult],
    manifest: ModelManifest,
    thresholds: Thresholds,
    into: DetectionTally | None = None,
) -> DetectionTally:
    """Score ``results`` with ``thresholds``; counts add to ``into`` when given (pooling)."""
    codes = tuple(thresholds)
    t = into if into is not None else DetectionTally(codes)
    for r in results:
        chosen = select(list(r.peaks), r.image_probs, manifest, thresholds)
        t.add(
            r.truth,
            [Scored(d.type_code, d.score, d.box_norm) for d in chosen if d.type_code in codes],
        )
    return t


def tune_thresholds(results: list[ImageResult], manifest: ModelManifest) -> Thresholds:
    """Per class, the (box, image) thresholds maximising image-level F1 + box-level F1."""
    grid = [round(0.05 * i, 2) for i in range(1, 19)]
    has_image_head = any(r.image_probs is not None for r in results)
    image_grid: list[float | None] = list(grid) if has_image_head else [None]
    best: Thresholds = {}
    for code in manifest.class_codes():

        def score(pair: tuple[float, float | None], code: str = code) -> float:
            t = tally(results, manifest, {code: pair})
            return t.image[code].f1 + t.box[code].f1

        best[code] = max(((b, i) for b in grid for i in image_grid), key=score)
    return best


def cross_tuned(
    results: list[ImageResult], manifest: ModelManifest, block: int = 40
) -> dict[str, Any]:
    """Figures free of the optimism of tuning thresholds on the images they are scored on.

    The images are cut into two halves by alternating blocks of ``block`` consecutive images
    (frames of one drive stay together); each half is scored with the thresholds tuned on the
    other, and the counts of both halves are pooled.
    """
    halves = ([r for i, r in enumerate(results) if (i // block) % 2 == k] for k in (0, 1))
    first, second = halves
    codes = manifest.class_codes()
    pooled = DetectionTally(codes)
    for scored, tuned_on in ((first, second), (second, first)):
        tally(scored, manifest, tune_thresholds(tuned_on, manifest), into=pooled)
    return {
        "macro_f1": round(pooled.macro_f1("image"), 4),
        "box_macro_f1": round(pooled.macro_f1("box"), 4),
        "box_per_class_f1": {c: round(pooled.box[c].f1, 4) for c in codes},
        "images": pooled.images,
        "method": f"2 halves by alternating blocks of {block} images; each scored with the "
        "thresholds tuned on the other",
    }


def voc_report(
    results: list[ImageResult], manifest: ModelManifest, thresholds: Thresholds
) -> dict[str, Any]:
    codes = tuple(thresholds)
    t = tally(results, manifest, thresholds)
    return {
        "macro_f1": round(t.macro_f1("image"), 4),
        "per_class": {c: t.image[c].as_dict() for c in codes},
        "box_macro_f1": round(t.macro_f1("box"), 4),
        "box_per_class": {c: t.box[c].as_dict() for c in codes},
        "images": t.images,
        "latency_ms_median": round(statistics.median(r.latency_ms for r in results), 3)
        if results
        else None,
    }


def evaluate_voc(grader: Grader, voc_dir: Path, subset: str = "all") -> dict[str, Any]:
    results = collect_voc(grader, voc_dir, subset)
    return voc_report(results, grader.manifest, manifest_thresholds(grader))


def evaluate_folders(grader: Grader, root: Path) -> dict[str, Any]:
    """One sub-folder per type code (optionally ``none``); prediction = strongest finding's type."""
    codes = grader.manifest.class_codes()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    unknown = [p.name for p in folders if p.name not in (*codes, NONE_LABEL)]
    if not folders or unknown:
        raise ValueError(
            f"{root}: expected sub-folders named {', '.join((*codes, NONE_LABEL))}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    pairs, latencies = [], []
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            damages, ms = grader.detect(_read(path))
            latencies.append(ms)
            predicted = max(damages, key=lambda d: d.score).type_code if damages else NONE_LABEL
            pairs.append((folder.name, predicted))
    labels = codes + ((NONE_LABEL,) if any(f.name == NONE_LABEL for f in folders) else ())
    report = confusion_report(pairs, labels)
    return {
        "macro_f1": report["macro_f1"],
        "per_class": report["per_class"],
        "confusion": report["confusion"],
        "box_macro_f1": None,
        "images": len(pairs),
        "latency_ms_median": round(statistics.median(latencies), 3) if latencies else None,
    }
