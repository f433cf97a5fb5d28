"""Everything a package must pass before it may grade a frame on a vehicle."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config.loader import DEMO_DIR
from edge.grading.grader import Grader
from edge.grading.manifest import (
    ModelManifest,
    ModelPackageError,
    load_manifest,
    manifest_path_for,
    verify_file,
)
from edge.model_store.signing import verify_signature


def reference_frame_path() -> Path:
    """A real road frame shipped with the software (the demo drive's first one)."""
    frames = sorted((DEMO_DIR / "frames").glob("*.jpg"))
    if not frames:
        raise ModelPackageError(f"{DEMO_DIR / 'frames'}: bundled reference frame missing")
    return frames[0]


def verify_package(package: Path, trusted_keys: tuple[Path, ...]) -> ModelManifest:
    """Check hash and size, signature, onnxruntime load and shapes, and finite outputs.

    Raises ModelPackageError naming the file and the reason for the first check that fails.
    The hash is checked before the signature so a mismatch is reported as what it is.
    """
    manifest_path = manifest_path_for(package)
    manifest = load_manifest(manifest_path)
    verify_file(manifest, manifest_path)
    verify_signature(manifest_path, trusted_keys)
    grader = Grader(manifest_path, threads=1)  # refuses wrong input/output shapes
    frame_path = reference_frame_path()
    image = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ModelPackageError(f"{frame_path}: reference frame unreadable")
    try:
        outputs = grader.raw_outputs(image)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelPackageError(
            f"{grader.model_path}: fails on the reference frame: {exc}"
        ) from exc
    for name, values in zip(grader._output_names, outputs, strict=False):
        if values is not None and not np.all(np.isfinite(values)):
            raise ModelPackageError(
                f"{grader.model_path}: output {name!r} has non-finite values (NaN/inf) "
                f"on the reference frame {frame_path.name}"
            )
    return manifest
