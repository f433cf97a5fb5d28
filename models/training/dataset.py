"""RDD Pascal-VOC data: parsing, the fixed train/validation split, augmentation, targets.

``Repair`` boxes (patched areas) are not damage: they are left out of the targets, so the
model learns them as background, i.e. as a negative.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SPLIT_BLOCK = 40  # consecutive image numbers per block: one drive's frames stay together
SPLIT_VAL_EVERY = 5  # every 5th block (offset below) is validation: about 80/20
SPLIT_VAL_OFFSET = 2


@dataclass(frozen=True, slots=True)
class Box:
    code: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True, slots=True)
class Sample:
    image_path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]  # damage boxes only (classes of interest)


def image_number(path: Path) -> int:
    found = re.findall(r"\d+", path.stem)
    if not found:
        raise ValueError(f"{path}: no image number in the file name")
    return int(found[-1])


def is_validation(path: Path) -> bool:
    return (image_number(path) // SPLIT_BLOCK) % SPLIT_VAL_EVERY == SPLIT_VAL_OFFSET


def parse_voc(xml_path: Path, image_dir: Path, codes: tuple[str, ...]) -> Sample:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{xml_path}: not valid XML ({exc})") from exc
    filename = root.findtext("filename") or xml_path.with_suffix(".jpg").name
    width = int(float(root.findtext("size/width") or 0))
    height = int(float(root.findtext("size/height") or 0))
    boxes = []
    for obj in root.iter("object"):
        code = (obj.findtext("name") or "").strip()
        if code not in codes:
            continue
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{xml_path}: object {code} has no bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
        if not (x1 > x0 and y1 > y0):
            continue
        boxes.append(Box(code, x0, y0, x1, y1))
    return Sample(image_dir / filename, width, height, tuple(boxes))


def load_voc_dir(root: Path, codes: tuple[str, ...]) -> list[Sample]:
    """A folder with images/ and annotations/xmls/ (the RDD layout), sorted by image number."""
    xml_dir, image_dir = root / "annotations" / "xmls", root / "images"
    if not xml_dir.is_dir() or not image_dir.is_dir():
        raise FileNotFoundError(f"{root}: expected images/ and annotations/xmls/ inside")
    samples = [parse_voc(p, image_dir, codes) for p in sorted(xml_dir.glob("*.xml"))]
    return sorted(samples, key=lambda s: image_number(s.image_path))


def split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    train = [s for s in samples if not is_validation(s.image_path)]
    val = [s for s in samples if is_validation(s.image_path)]
    return train, val


# --- augmentation: what a dashboard camera does to a picture -------------------------------


def augment(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random scale crop, flip, brightness/contrast, blur, JPEG quality.

    boxes: N×4 pixels. Returns the image, the boxes that survived the crop, and which did.
    """
    h, w = image.shape[:2]
    scale = rng.uniform(0.6, 1.0)
    cw, ch = int(w * scale), int(h * min(1.0, scale * rng.uniform(0.9, 1.1)))
    x_off, y_off = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image[y_off : y_off + ch, x_off : x_off + cw]
    if len(boxes):
        orig_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = boxes - np.array([x_off, y_off, x_off, y_off], dtype=np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, cw)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, ch)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = area >= 0.35 * orig_area
        boxes = boxes[keep]
    else:
        keep = np.zeros(0, dtype=bool)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [0, 2]] = cw - boxes[:, [2, 0]]
    image = np.ascontiguousarray(image)
    alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-35, 35)
    image = cv2.convertScaleAbs(image, alpha=alpha, beta=beta)
    if rng.random() < 0.25:
        k = int(rng.choice([3, 5]))
        image = (
            cv2.GaussianBlur(image, (k, k), 0) if rng.random() < 0.5 else cv2.blur(image, (k, 1))
        )
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 80))])
        decoded = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            image = decoded
    return image, boxes.astype(np.float32), keep


# --- TTFNet-style training targets -----------------------------------------------------------


def make_targets(
    boxes_norm: np.ndarray,
    class_ids: np.ndarray,
    num_classes: int,
    out_h: int,
    out_w: int,
    alpha: float = 0.54,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat map (C×H×W), box targets (4×H×W, normalised x0,y0,x1,y1) and regression weights (H×W).

    Elliptical Gaussians sized by each box (long cracks get long blobs); regression targets at
    every cell of the blob, weighted by the Gaussian and log(area) so large boxes don't dominate.
    Smaller boxes are painted last and win where boxes overlap.
    """
    heat = np.zeros((num_classes, out_h, out_w), np.float32)
    box_t = np.zeros((4, out_h, out_w), np.float32)
    weight = np.zeros((out_h, out_w), np.float32)
    if len(boxes_norm) == 0:
        return heat, box_t, weight
    areas = (boxes_norm[:, 2] - boxes_norm[:, 0]) * (boxes_norm[:, 3] - boxes_norm[:, 1])
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    cx_grid, cy_grid = (xs + 0.5) / out_w, (ys + 0.5) / out_h
    for i in np.argsort(-areas):
        x0, y0, x1, y1 = boxes_norm[i]
        bw, bh = (x1 - x0) * out_w, (y1 - y0) * out_h
        cx, cy = (x0 + x1) / 2 * out_w - 0.5, (y0 + y1) / 2 * out_h - 0.5
        sx, sy = max(alpha * bw / 6, 0.4), max(alpha * bh / 6, 0.4)
        g = np.exp(-((xs - cx) ** 2) / (2 * sx**2) - ((ys - cy) ** 2) / (2 * sy**2))
        ci, cj = int(np.clip(round(cy), 0, out_h - 1)), int(np.clip(round(cx), 0, out_w - 1))
        g[ci, cj] = 1.0  # the peak is exactly 1 so the focal loss sees one positive per box
        heat[class_ids[i]] = np.maximum(heat[class_ids[i]], g)
        inside = (g > 0.05) & (cx_grid > x0) & (cx_grid < x1) & (cy_grid > y0) & (cy_grid < y1)
        inside[ci, cj] = True
        gi = g * inside
        norm = np.log(max(areas[i] * out_w * out_h, 1.0) + 1.0) / max(gi.sum(), 1e-6)
        weight[inside] = gi[inside] * norm
        box_t[:, inside] = boxes_norm[i][:, None]
    return heat, box_t, weight
