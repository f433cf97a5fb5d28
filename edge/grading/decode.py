"""Model outputs → damages with grades, per the manifest. Pure numpy, no session here."""

from __future__ import annotations

import numpy as np

from edge.grading.manifest import ModelManifest
from edge.types import Damage

_COVERAGE_GRID = 32  # cells per side when measuring how much of the frame cracks cover


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _max_filter(heat: np.ndarray, k: int) -> np.ndarray:
    """k×k max over each channel's neighbourhood (C×H×W), edges padded with -inf."""
    if k <= 1:
        return heat
    r = k // 2
    padded = np.pad(heat, ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    out = np.full_like(heat, -np.inf)
    for dy in range(k):
        for dx in range(k):
            np.maximum(out, padded[:, dy : dy + h, dx : dx + w], out=out)
    return out


def candidates(
    heat_logits: np.ndarray, box_raw: np.ndarray, manifest: ModelManifest, floor: float
) -> list[Damage]:
    """Every heat-map peak scoring at least ``floor``, strongest first, with its box.

    heat_logits: C×H×W, box_raw: 4×H×W log side distances in strides. Boxes are clipped to
    the frame. Grades are the class grades, before the frame-level rules.
    """
    classes, out = manifest.classes, manifest.output
    if heat_logits.shape[0] != len(classes) or box_raw.shape[0] != 4:
        raise ValueError(
            f"model outputs {heat_logits.shape} / {box_raw.shape} do not match the manifest's "
            f"{len(classes)} classes and 4 box sides"
        )
    heat = sigmoid(heat_logits.astype(np.float32))
    peaks = (heat >= _max_filter(heat, out.peak_kernel)) & (heat >= floor)
    cls_idx, ys, xs = np.nonzero(peaks)
    scores = heat[cls_idx, ys, xs]
    h, w = heat.shape[1:]
    in_w, in_h = manifest.input.width, manifest.input.height
    found = []
    for i in np.argsort(-scores):
        c, y, x = int(cls_idx[i]), int(ys[i]), int(xs[i])
        left, top, right, bottom = np.exp(np.minimum(box_raw[:, y, x], 6.0)) * out.stride
        cx, cy = (x + 0.5) / w, (y + 0.5) / h
        box = (
            float(np.clip(cx - left / in_w, 0.0, 1.0)),
            float(np.clip(cy - top / in_h, 0.0, 1.0)),
            float(np.clip(cx + right / in_w, 0.0, 1.0)),
            float(np.clip(cy + bottom / in_h, 0.0, 1.0)),
        )
        found.append(Damage(classes[c].code, float(scores[i]), box, classes[c].grade))
    return found


def select(
    found: list[Damage],
    image_probs: np.ndarray | None,
    manifest: ModelManifest,
    thresholds: dict[str, tuple[float, float | None]] | None = None,
) -> list[Damage]:
    """Findings of each type: its peaks at or above the class threshold, confirmed or vetoed by
    the image-level probability when the model has one (a type the image head says is present
    keeps at least its strongest peak). ``thresholds`` (box, image) overrides the manifest's
    for tuning."""
    kept: list[Damage] = []
    for index, spec in enumerate(manifest.classes):
        if thresholds is not None and spec.code not in thresholds:
            continue
        box_th, image_th = (
            thresholds[spec.code] if thresholds else (spec.threshold, spec.image_threshold)
        )
        of_type = suppress_overlaps(
            [d for d in found if d.type_code == spec.code], manifest.output.box_nms_iou
        )
        chosen = [d for d in of_type if d.score >= box_th]
        if image_probs is not None and image_th is not None:
            if image_probs[index] < image_th:
                chosen = []
            elif not chosen and of_type:
                chosen = of_type[:1]
        kept.extend(chosen)
    kept.sort(key=lambda d: -d.score)
    return apply_grade_rules(kept[: manifest.output.max_detections], manifest)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(damages: list[Damage], max_iou: float | None) -> list[Damage]:
    """Greedy non-maximum suppression over damages sorted strongest first."""
    if max_iou is None:
        return damages
    kept: list[Damage] = []
    for d in damages:
        if all(box_iou(k.box_norm, d.box_norm) < max_iou for k in kept):
            kept.append(d)
    return kept


def decode(
    heat_logits: np.ndarray,
    box_raw: np.ndarray,
    manifest: ModelManifest,
    image_logits: np.ndarray | None = None,
) -> list[Damage]:
    """Decode one image's outputs into graded findings, per the manifest."""
    lowest = min(c.threshold for c in manifest.classes)
    floor = lowest
    if image_logits is not None:
        floor = min(lowest, manifest.output.rescue_min_score)
    probs = sigmoid(image_logits) if image_logits is not None else None
    return select(candidates(heat_logits, box_raw, manifest, floor), probs, manifest)


def crack_coverage(damages: list[Damage], codes: tuple[str, ...]) -> float:
    """Share of the frame covered by the union of the boxes of the given types."""
    grid = np.zeros((_COVERAGE_GRID, _COVERAGE_GRID), bool)
    for d in damages:
        if d.type_code in codes:
            x0, y0, x1, y1 = (round(v * _COVERAGE_GRID) for v in d.box_norm)
            grid[y0:y1, x0:x1] = True
    return float(grid.mean())


def apply_grade_rules(damages: list[Damage], manifest: ModelManifest) -> list[Damage]:
    rule = manifest.grade_rules.large_share
    if rule is None or crack_coverage(damages, rule.codes) < rule.min_frame_share:
        return damages
    return [
        Damage(d.type_code, d.score, d.box_norm, max(d.grade, rule.grade))
        if d.type_code in rule.codes
        else d
        for d in damages
    ]


def frame_grade(damages: list[Damage] | tuple[Damage, ...]) -> int:
    return max((d.grade for d in damages), default=0)
