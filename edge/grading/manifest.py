"""The model package's manifest: everything the runtime needs to know about a model file.

Nothing about a model is hard-coded elsewhere: input size, normalisation, classes, thresholds,
grade rules and the decoder all come from here. Unknown keys are refused so that a typo in a
technician's edit cannot silently change grading.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_SCHEMA = "roadpatrol.model-manifest"
MANIFEST_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    width: int = Field(gt=0, description="Model input width in pixels.")
    height: int = Field(gt=0, description="Model input height in pixels.")
    layout: Literal["NCHW"] = Field("NCHW", description="Tensor layout.")
    colour_order: Literal["RGB", "BGR"] = Field(
        "RGB", description="Channel order fed to the model."
    )
    mean: tuple[float, float, float] = Field(
        description="Per-channel mean subtracted (0..255 scale)."
    )
    std: tuple[float, float, float] = Field(description="Per-channel divisor (0..255 scale).")
    resize: Literal["stretch"] = Field("stretch", description="How a frame is fitted to the input.")
    input_name: str = Field("image", description="Name of the ONNX input.")


class OutputSpec(_Strict):
    decoder: Literal["ttf-v1"] = Field(
        "ttf-v1",
        description="Centre heat map per class (logits) + box side distances (log, in strides).",
    )
    stride: int = Field(gt=0, description="Input pixels per output cell.")
    heat_output: str = Field("heat", description="ONNX output with class heat-map logits N×C×H×W.")
    box_output: str = Field("box", description="ONNX output with log side distances N×4×H×W.")
    image_output: str | None = Field(
        None,
        description="Optional ONNX output with image-level logits N×C: which types the frame "
        "shows at all. When present it confirms or vetoes each type's box findings.",
    )
    rescue_min_score: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="When the image-level output says a type is present but no box reaches its "
        "threshold, the strongest peak of that type at or above this score is reported.",
    )
    peak_kernel: int = Field(3, ge=1, description="Window of the max filter that picks peaks.")
    box_nms_iou: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Drop a finding whose box overlaps a stronger one of the same type by at "
        "least this IoU (a long crack makes several peaks along it). None: no suppression.",
    )
    max_detections: int = Field(50, gt=0, description="At most this many findings per frame.")


class ClassSpec(_Strict):
    code: str = Field(description="RDD damage code, e.g. D40.")
    name_en: str
    name_ja: str
    threshold: float = Field(ge=0.0, le=1.0, description="Score at or above which it is a finding.")
    grade: int = Field(ge=1, le=3, description="Grade of a finding of this type (brief's table).")
    image_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Image-level probability at or above which the frame shows this type "
        "(used with the output's image_output).",
    )


class LargeShareRule(_Strict):
    """Linear cracks covering a large share of the frame need repair (grade 2)."""

    codes: tuple[str, ...] = ("D00", "D10")
    min_frame_share: float = Field(0.3, gt=0.0, le=1.0)
    grade: int = Field(2, ge=1, le=3)


class GradeRules(_Strict):
    large_share: LargeShareRule | None = LargeShareRule()


class ModelManifest(_Strict):
    schema_: str = Field(MANIFEST_SCHEMA, alias="schema")
    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_.+-]*$")
    created_utc: datetime
    file: str = Field(description="The .onnx file, relative to the manifest.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file_bytes: int = Field(gt=0)
    precision: Literal["fp32", "int8"]
    default_for_vehicles: bool = Field(
        False, description="True when this package is the one vehicles run by default."
    )
    activate_on_arrival: bool = Field(
        False,
        description="A vehicle that receives this package from `office push-model` makes it "
        "active at once. Part of the signed manifest, so only the signer decides; the push "
        "can hold activation back but never force it. False: installed only, activated later "
        "with `roadpatrol model activate`.",
    )
    input: InputSpec
    output: OutputSpec
    classes: tuple[ClassSpec, ...]
    grade_rules: GradeRules = GradeRules()
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    quantization: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _codes_unique(self) -> ModelManifest:
        codes = [c.code for c in self.classes]
        if len(set(codes)) != len(codes) or not codes:
            raise ValueError(f"class codes must be unique and non-empty, got {codes}")
        return self

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.version}"

    def class_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.classes)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


class ModelPackageError(Exception):
    """A model package that must not grade frames; the message says which file and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path_for(model_path: Path) -> Path:
    """`x.onnx` ↔ `x.json`: accept either and return the manifest's path."""
    return model_path if model_path.suffix == ".json" else model_path.with_suffix(".json")


def load_manifest(path: Path) -> ModelManifest:
    path = manifest_path_for(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelPackageError(f"{path}: manifest not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ModelPackageError(f"{path}: invalid manifest: {problems}") from exc


def verify_file(manifest: ModelManifest, manifest_path: Path) -> Path:
    """Return the model file's path after checking its size and sha256 against the manifest."""
    model_path = manifest_path_for(manifest_path).parent / manifest.file
    if not model_path.is_file():
        raise ModelPackageError(f"{model_path}: model file named by the manifest is missing")
    size = model_path.stat().st_size
    if size != manifest.file_bytes:
        raise ModelPackageError(
            f"{model_path}: {size} bytes, manifest says {manifest.file_bytes} "
            "(truncated or half-copied file?)"
        )
    actual = sha256_of(model_path)
    if actual != manifest.sha256:
        raise ModelPackageError(
            f"{model_path}: sha256 {actual} does not match the manifest's {manifest.sha256}"
        )
    return model_path


def set_activate_on_arrival(path: Path, activate: bool) -> bool:
    """Rewrite the manifest with ``activate_on_arrival`` set; False when it already said so.

    Only that key changes (the others keep their order and values). The new text is written to
    a temporary file, fsynced and renamed over the manifest, so a crash leaves either manifest
    whole. Any signature made before is void afterwards: sign again.
    """
    path = manifest_path_for(path)
    load_manifest(path)  # refuse to touch a manifest that is broken already
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("activate_on_arrival") is activate:
        return False
    raw["activate_on_arrival"] = activate
    text = json.dumps(raw, ensure_ascii=False, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True
