"""`model evaluate` / `model compare`: a model package on labelled real images.

Runs on the vehicle runtime alone (onnxruntime + numpy), no torch: a technician can check a
model on any machine before shipping it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edge.grader import Grader
from models.metrics import DetectionTally, Labelled, Scored, confusion_report
from models.training.dataset import load_voc_dir, split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
NONE_LABEL = "none"


@dataclass(frozen=True)
class ImageResult:
    truth: tuple[Labelled, ...]
    found: tuple[Scored, ...]  # every peak down to the collection floor, not yet thresholded
    latency_ms: float


def _read(path: Path) -> Any:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image


def collect_voc(
    grader: Grader, voc_dir: Path, subset: str = "all", floor: float | None = None
) -> list[ImageResult]:
    """Detections for each annotated image. With ``floor`` the class thresholds are lowered to it
    (for threshold tuning); otherwise the manifest's thresholds apply."""
    samples = load_voc_dir(voc_dir, grader.manifest.class_codes())
    if subset != "all":
        train, val = split(samples)
        samples = val if subset == "val" else train
    if floor is not None:
        grader.manifest = grader.manifest.model_copy(
            update={
                "classes": tuple(
                    c.model_copy(update={"threshold": floor}) for c in grader.manifest.classes
                )
            }
        )
    results = []
    for s in samples:
        image = _read(s.image_path)
        h, w = image.shape[:2]
        damages, ms = grader.detect(image)
        truth = tuple(Labelled(b.code, (b.x0 / w, b.y0 / h, b.x1 / w, b.y1 / h)) for b in s.boxes)
        found = tuple(Scored(d.type_code, d.score, d.box_norm) for d in damages)
        results.append(ImageResult(truth, found, ms))
    return results


def tally(
    results: list[ImageResult], codes: tuple[str, ...], thresholds: dict[str, float]
) -> DetectionTally:
    t = DetectionTally(codes)
    for r in results:
        t.add(r.truth, [f for f in r.found if f.score >= thresholds.get(f.code, 1.0)])
    return t


def tune_thresholds(results: list[ImageResult], codes: tuple[str, ...]) -> dict[str, float]:
    """Per class, the threshold maximising image-level F1 + box-level F1 of that class."""
    grid = [round(0.05 * i, 2) for i in range(2, 19)]
    best: dict[str, float] = {}
    for code in codes:

        def score(th: float, code: str = code) -> float:
            t = tally(results, (code,), {code: th})
            return t.image[code].f1 + t.box[code].f1

        best[code] = max(grid, key=score)
    return best


def voc_report(
    results: list[ImageResult], codes: tuple[str, ...], thresholds: dict[str, float]
) -> dict[str, Any]:
    t = tally(results, codes, thresholds)
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
    thresholds = {c.code: c.threshold for c in grader.manifest.classes}
    return voc_report(results, grader.manifest.class_codes(), thresholds)


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


def compare(a: Grader, b: Grader, voc_dir: Path, subset: str = "all") -> dict[str, Any]:
    """Both models on the same images in one run: metric deltas (b − a) and latency ratio."""
    ra, rb = evaluate_voc(a, voc_dir, subset), evaluate_voc(b, voc_dir, subset)
    codes = a.manifest.class_codes()
    return {
        "a": {"model": a.model_id, **ra},
        "b": {"model": b.model_id, **rb},
        "delta": {
            "macro_f1": round(rb["macro_f1"] - ra["macro_f1"], 4),
            "box_macro_f1": round(rb["box_macro_f1"] - ra["box_macro_f1"], 4),
            "per_class_f1": {
                c: round(rb["per_class"][c]["f1"] - ra["per_class"][c]["f1"], 4) for c in codes
            },
            "box_per_class_f1": {
                c: round(rb["box_per_class"][c]["f1"] - ra["box_per_class"][c]["f1"], 4)
                for c in codes
            },
        },
        "latency_ratio_b_over_a": round(rb["latency_ms_median"] / ra["latency_ms_median"], 3),
    }
