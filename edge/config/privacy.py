"""Config section ``[privacy]``: faces and licence plates are blurred before an image is stored.

On by default. Turning it off takes ``enabled = false`` in the file, and the driver's screen
then says "privacy off" for as long as the recorder runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

Detector = Literal["faces", "plates"]


class PrivacyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict: "no", 0 or "off" must not switch privacy off by coercion; only `false` does.
    enabled: StrictBool = Field(
        True,
        description="Blur faces and licence plates (and other text) in a finding's image "
        "before it is stored or sent; the raw frame never touches the disk. false stores raw "
        "frames and "
        "shows 'privacy off' on the driver's screen.",
    )
    detectors: tuple[Detector, ...] = Field(
        ("faces", "plates"),
        min_length=1,
        description="What to find and blur. 'faces': YuNet (libfacedetection, in the yuface "
        "package); 'plates': text regions (licence plates, signs with names) by the PP-OCRv6 "
        "text detector shipped in the rapidocr package.",
    )
    min_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A region is blurred when the detector's mean probability over it is at "
        "least this. Lower blurs more (and more road markings).",
    )
    blur: Literal["gaussian", "fill"] = Field(
        "gaussian", description="'gaussian' blurs a region; 'fill' paints it its mean colour."
    )
    blur_strength: float = Field(
        0.5,
        gt=0.0,
        le=4.0,
        description="Gaussian sigma as a fraction of the region's shorter side: 0.5 leaves "
        "no character readable.",
    )
    margin: float = Field(
        0.25,
        ge=0.0,
        le=2.0,
        description="Each region is grown by this fraction of its height on every side before "
        "blurring, so a plate's edge characters are covered too.",
    )
    max_region: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Text regions wider or taller than this fraction of the frame are not plates "
        "(crosswalk stripes, rows of road studs): left sharp, so that damage under them stays "
        "visible to the office.",
    )
    detect_width_px: int = Field(
        640,
        ge=160,
        le=4096,
        description="Frames are scaled to this width (a multiple of 32) for the detector: "
        "smaller is faster but misses smaller plates.",
    )
    queue_size: int = Field(
        8,
        ge=1,
        le=256,
        description="Finding images waiting to be anonymised. When it is full the image of the "
        "lowest-graded waiting finding is dropped (its record is kept, without an image).",
    )
    threads: int = Field(1, ge=1, le=64, description="onnxruntime threads for the detectors.")
    plate_model: Path | None = Field(
        None,
        description="Text-detector ONNX file. Default: PP-OCRv6_det_small.onnx from the "
        "installed rapidocr package.",
    )
