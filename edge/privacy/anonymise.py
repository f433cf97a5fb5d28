"""Blur what the detectors find; say in the image what was done and by what."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import piexif

from edge import __version__ as software_version
from edge.config.privacy import PrivacyConfig
from edge.privacy.detect import FaceDetector, PrivacyError, Region, TextDetector

NOTE_FORMAT = "roadpatrol.privacy/1"


@dataclass(frozen=True, slots=True)
class Anonymised:
    image: np.ndarray  # a new array: the caller's frame is left as it was
    regions: tuple[Region, ...]
    detect_ms: float


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def privacy_note(*, anonymised: bool, by: str, regions: int | None = None) -> str:
    """The record stored in each image's EXIF (MakerNote) and sent with it."""
    note: dict[str, object] = {"format": NOTE_FORMAT, "anonymised": anonymised, "by": by}
    if regions is not None:
        note["regions"] = regions
    return json.dumps(note, separators=(",", ":"))


def read_note(jpeg: bytes) -> dict[str, object] | None:
    """The privacy note in a stored image's EXIF; None when it has none (older images)."""
    try:
        raw = piexif.load(jpeg)["Exif"].get(piexif.ExifIFD.MakerNote)
        note = json.loads(raw.decode("ascii")) if raw else None
    except (ValueError, KeyError, struct.error, UnicodeDecodeError):
        return None
    return note if isinstance(note, dict) and note.get("format") == NOTE_FORMAT else None


def off_note() -> str:
    return privacy_note(anonymised=False, by="privacy off ([privacy] enabled = false)")


class Anonymiser:
    """Loads the configured detectors (raises PrivacyError) and anonymises frames."""

    def __init__(self, config: PrivacyConfig) -> None:
        self.config = config
        self.detectors: list[FaceDetector | TextDetector] = []
        try:
            for name in config.detectors:
                self.detectors.append(self._load(name, config))
        except PrivacyError:
            self.close()  # a face worker already started must not outlive the failure
            raise
        self.by = f"roadpatrol {software_version}: " + ", ".join(d.name for d in self.detectors)

    @staticmethod
    def _load(name: str, config: PrivacyConfig) -> FaceDetector | TextDetector:
        if name == "faces":
            return FaceDetector(width_px=config.detect_width_px, threads=config.threads)
        return TextDetector(
            config.plate_model, width_px=config.detect_width_px, threads=config.threads
        )

    def close(self) -> None:
        for detector in self.detectors:
            detector.close()

    def note(self, regions: int) -> str:
        return privacy_note(anonymised=True, by=self.by, regions=regions)

    def anonymise(self, image: np.ndarray) -> Anonymised:
        started = cv2.getTickCount()
        regions: list[Region] = []
        h, w = image.shape[:2]
        limit_w, limit_h = self.config.max_region * w, self.config.max_region * h
        for detector in self.detectors:
            for r in detector.detect(image, self.config.min_confidence):
                # Only text can be too big to be a plate; a face near the camera is still one.
                small = r.x1_px - r.x0_px <= limit_w and r.y1_px - r.y0_px <= limit_h
                if small or r.kind != "plate":
                    regions.append(r)
        detect_ms = (cv2.getTickCount() - started) * 1000.0 / cv2.getTickFrequency()
        out = image.copy()
        for region in regions:
            self._blur(out, region)
        return Anonymised(out, tuple(regions), detect_ms)

    def _blur(self, image: np.ndarray, r: Region) -> None:
        pad = round(self.config.margin * (r.y1_px - r.y0_px))
        h, w = image.shape[:2]
        x0, y0 = max(0, r.x0_px - pad), max(0, r.y0_px - pad)
        x1, y1 = min(w, r.x1_px + pad), min(h, r.y1_px + pad)
        if x1 <= x0 or y1 <= y0:
            return
        patch = image[y0:y1, x0:x1]
        if self.config.blur == "fill":
            patch[:] = np.asarray(patch.reshape(-1, patch.shape[-1]).mean(axis=0), patch.dtype)
            return
        sigma = max(1.0, self.config.blur_strength * min(x1 - x0, y1 - y0))
        # Blur from a border-replicated copy: what lies outside the box never bleeds in, so
        # the box holds nothing of the plate and the rest of the frame is untouched.
        patch[:] = cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
