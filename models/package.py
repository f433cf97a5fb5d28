"""Writing model packages: an .onnx file plus its manifest, hash and size filled in."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.grading.manifest import (
    ClassSpec,
    GradeRules,
    InputSpec,
    ModelManifest,
    OutputSpec,
    sha256_of,
)


def write_package(
    onnx_file: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    precision: Literal["fp32", "int8"],
    input_spec: InputSpec,
    output_spec: OutputSpec,
    classes: tuple[ClassSpec, ...],
    grade_rules: GradeRules | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    quantization: dict[str, Any] | None = None,
    default_for_vehicles: bool = False,
) -> Path:
    """Copy the model to ``out_dir/<name>-<version>.onnx`` and write its manifest beside it.

    Returns the manifest's path. The copy is written under a temporary name and renamed, so a
    package directory never holds a half-written model under its real name.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{version}"
    target = out_dir / f"{stem}.onnx"
    if onnx_file.resolve() != target.resolve():
        tmp = target.with_suffix(".onnx.tmp")
        shutil.copyfile(onnx_file, tmp)
        tmp.replace(target)
    manifest = ModelManifest(
        name=name,
        version=version,
        created_utc=datetime.now(UTC).replace(microsecond=0),
        file=target.name,
        sha256=sha256_of(target),
        file_bytes=target.stat().st_size,
        precision=precision,
        default_for_vehicles=default_for_vehicles,
        input=input_spec,
        output=output_spec,
        classes=classes,
        grade_rules=grade_rules or GradeRules(),
        metrics=metrics or {},
        training=training or {},
        quantization=quantization,
    )
    manifest_path = out_dir / f"{stem}.json"
    tmp_manifest = manifest_path.with_suffix(".json.tmp")
    tmp_manifest.write_text(manifest.to_json(), encoding="utf-8")
    tmp_manifest.replace(manifest_path)
    return manifest_path


def update_manifest(manifest_path: Path, **changes: Any) -> Path:
    """Rewrite a manifest with some fields replaced (thresholds, metrics), re-validated."""
    from edge.grading.manifest import load_manifest

    current = load_manifest(manifest_path)
    updated = ModelManifest.model_validate({**current.model_dump(by_alias=True), **changes})
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(updated.to_json(), encoding="utf-8")
    tmp.replace(manifest_path)
    return manifest_path
