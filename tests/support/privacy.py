"""Real photos with licence plates and a face, boxed by hand, and measures of what blurring
did.

Plates: RDD2022 China_MotorBike training photos (Arya, Maeda, Sekimoto et al., CC BY-SA 4.0)
in which a car's plate is readable. Face: NASA's portrait of the astronaut Eileen Collins
(public domain), as shipped in scikit-image. See tests/fixtures/privacy/ATTRIBUTION.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "privacy"
Box = tuple[int, int, int, int]


def frames(kind: str | None = None) -> list[tuple[Path, list[Box]]]:
    """Each fixture photo with its hand-drawn boxes (x0, y0, x1, y1) of ``kind`` ("plate",
    "face"; None: both), leaving out photos with none."""
    regions = json.loads((FIXTURES / "regions.json").read_text())
    found = []
    for name, by_kind in regions.items():
        if not name.endswith(".jpg"):
            continue
        boxes = [tuple(b) for k, bs in by_kind.items() if kind in (None, k) for b in bs]
        if boxes:
            found.append((FIXTURES / name, boxes))
    return found


def sharpness(image: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian inside ``box``: high where characters are readable."""
    x0, y0, x1, y1 = box
    gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def mean_abs_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16))[mask].mean())


def outside(shape: tuple[int, ...], boxes: list[Box], pad: int) -> np.ndarray:
    """True away from every box (grown by ``pad``), where nothing may have changed."""
    mask = np.ones(shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = False
    return mask
