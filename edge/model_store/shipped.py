"""The packages shipped with the software (``models/``): which one a vehicle grades with
when its config names none."""

from __future__ import annotations

from pathlib import Path

from edge.config.loader import SHIPPED_MODELS_DIR
from edge.grading.manifest import ModelPackageError, load_manifest


def default_model_package(models_dir: Path = SHIPPED_MODELS_DIR) -> Path:
    """The shipped package whose manifest marks it as the vehicles' default; should several be
    marked (a folder copied together by hand), the highest version wins."""
    marked: list[tuple[tuple[int, ...], Path]] = []
    for manifest_path in sorted(models_dir.glob("*.json")):
        try:
            manifest = load_manifest(manifest_path)
        except ModelPackageError:
            continue
        if manifest.default_for_vehicles:
            marked.append((_version_key(manifest.version), manifest_path))
    if not marked:
        raise ModelPackageError(f"{models_dir}: no model package marked default_for_vehicles")
    return max(marked, key=lambda m: m[0])[1]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.replace("+", ".").split("."))
