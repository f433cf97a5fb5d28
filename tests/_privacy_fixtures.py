"""Real road frames with licence plates, boxed by hand, and measures of what blurring did.

The frames are RDD2022 China_MotorBike training photos (Arya, Maeda, Sekimoto et al.,
CC BY-SA 4.0; see tests/fixtures/privacy/ATTRIBUTION.md) in which a car's plate is readable.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "privacy"
Box = tuple[int, int, int, int]


def plate_frames() -> list[tuple[Path, list[Box]]]:
    """Each fixture frame with its hand-drawn plate boxes (x0, y0, x1, y1)."""
    boxes = json.loads((FIXTURES / "plates.json").read_text())
    return [
        (FIXTURES / name, [tuple(b) for b in bs])
        for name, bs in boxes.items()
        if name.endswith(".jpg")
    ]


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
