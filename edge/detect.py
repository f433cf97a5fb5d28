"""Model outputs → damages with grades, per the manifest. Pure numpy, no session here."""

from __future__ import annotations

import numpy as np

from edge.manifest import ModelManifest
from edge.types import Damage

_COVERAGE_GRID = 32  # cells per side when measuring how much of the frame cracks cover


def _sigmoid(x: np.ndarray) -> np.ndarray:
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


def decode(heat_logits: np.ndarray, box_raw: np.ndarray, manifest: ModelManifest) -> list[Damage]:
    """Decode one image's outputs (C×H×W heat logits, 4×H×W log side distances).

    Findings are heat-map peaks at or above their class's threshold, strongest first, capped
    at the manifest's max_detections; boxes are clipped to the frame.
    """
    classes, out = manifest.classes, manifest.output
    if heat_logits.shape[0] != len(classes) or box_raw.shape[0] != 4:
        raise ValueError(
            f"model outputs {heat_logits.shape} / {box_raw.shape} do not match the manifest's "
            f"{len(classes)} classes and 4 box sides"
        )
    heat = _sigmoid(heat_logits.astype(np.float32))
    peaks = heat >= _max_filter(heat, out.peak_kernel)
    thresholds = np.array([c.threshold for c in classes], np.float32)[:, None, None]
    cls_idx, ys, xs = np.nonzero(peaks & (heat >= thresholds))
    scores = heat[cls_idx, ys, xs]
    order = np.argsort(-scores)[: out.max_detections]
    h, w = heat.shape[1:]
    in_w, in_h = manifest.input.width, manifest.input.height
    damages = []
    for i in order:
        c, y, x = int(cls_idx[i]), int(ys[i]), int(xs[i])
        left, top, right, bottom = np.exp(np.minimum(box_raw[:, y, x], 6.0)) * out.stride
        cx, cy = (x + 0.5) / w, (y + 0.5) / h
        box = (
            float(np.clip(cx - left / in_w, 0.0, 1.0)),
            float(np.clip(cy - top / in_h, 0.0, 1.0)),
            float(np.clip(cx + right / in_w, 0.0, 1.0)),
            float(np.clip(cy + bottom / in_h, 0.0, 1.0)),
        )
        damages.append(Damage(classes[c].code, float(scores[i]), box, classes[c].grade))
    return apply_grade_rules(damages, manifest)


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
