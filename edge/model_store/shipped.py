"""The packages shipped with the software (``models/``): which one a vehicle grades with
when its config names none."""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from edge.config.loader import SHIPPED_MODELS_DIR
from edge.grading.manifest import ModelPackageError, load_manifest
from edge.model_store.versions import package_version


def default_model_package(models_dir: Path = SHIPPED_MODELS_DIR) -> Path:
    """The shipped package whose manifest marks it as the vehicles' default; should several be
    marked (a folder copied together by hand), the highest version wins."""
    marked: list[tuple[Version, Path]] = []
    for manifest_path in sorted(models_dir.glob("*.json")):
        try:
            manifest = load_manifest(manifest_path)
            if manifest.default_for_vehicles:
                # Ordered as the store orders versions (a downgrade check uses the same).
                marked.append((package_version(manifest.version, manifest_path), manifest_path))
        except ModelPackageError:
            continue
    if not marked:
        raise ModelPackageError(f"{models_dir}: no model package marked default_for_vehicles")
    return max(marked, key=lambda m: m[0])[1]
