"""Frame → model input tensor, driven by the manifest's input spec.

Training calls this same function on its (augmented) images, so the vehicle feeds the model
exactly what it was trained on.
"""

from __future__ import annotations

from typing import Literal, Protocol

import cv2
import numpy as np


class InputSpecLike(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def colour_order(self) -> Literal["RGB", "BGR"]: ...
    @property
    def mean(self) -> tuple[float, float, float]: ...
    @property
    def std(self) -> tuple[float, float, float]: ...


def resize_for_model(image_bgr: np.ndarray, spec: InputSpecLike) -> np.ndarray:
    """Stretch to the model's input size (uint8, H×W×3, colour order of the spec)."""
    h, w = image_bgr.shape[:2]
    shrinking = w > spec.width or h > spec.height
    resized = cv2.resize(
        image_bgr,
        (spec.width, spec.height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    if spec.colour_order == "RGB":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return resized


def normalise(resized: np.ndarray, spec: InputSpecLike) -> np.ndarray:
    """uint8 H×W×3 → float32 1×3×H×W, (x - mean) / std per channel."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float32)
    chw = ((resized.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1)
    return np.ascontiguousarray(chw[np.newaxis])


def preprocess(image_bgr: np.ndarray, spec: InputSpecLike) -> np.ndarray:
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected an H×W×3 uint8 BGR image, got shape {image_bgr.shape} {image_bgr.dtype}"
        )
    return normalise(resize_for_model(image_bgr, spec), spec)
