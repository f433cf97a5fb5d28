"""The Grader: one onnxruntime session running a verified model package."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.grading.decode import decode, frame_grade
from edge.grading.manifest import ModelManifest, ModelPackageError, load_manifest, verify_file
from edge.grading.preprocess import preprocess
from edge.types import Damage, Frame, GradedFrame


def default_threads() -> int:
    """Leave one core for capture, GPS and the screen."""
    return max(1, (os.cpu_count() or 2) - 1)


class Grader:
    """Loads a package (refusing a wrong hash, size or shape) and grades frames with it."""

    def __init__(self, package: Path, threads: int | None = None):
        self.manifest_path = package if package.suffix == ".json" else package.with_suffix(".json")
        self.manifest: ModelManifest = load_manifest(self.manifest_path)
        self.model_path = verify_file(self.manifest, self.manifest_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelPackageError(
                f"{self.model_path}: onnxruntime cannot load it: {exc}"
            ) from exc
        self._check_shapes()

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    def _check_shapes(self) -> None:
        spec, out = self.manifest.input, self.manifest.output
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        expected = [1, 3, spec.height, spec.width]
        if inputs.get(spec.input_name) != expected:
            raise ModelPackageError(
                f"{self.model_path}: input {spec.input_name!r} has shape "
                f"{inputs.get(spec.input_name)}, manifest says {expected} (inputs: {inputs})"
            )
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        cells = [spec.height // out.stride, spec.width // out.stride]
        n_classes = len(self.manifest.classes)
        expected_outputs = {
            out.heat_output: [1, n_classes, *cells],
            out.box_output: [1, 4, *cells],
        }
        if out.image_output is not None:
            expected_outputs[out.image_output] = [1, n_classes]
        for name, shape in expected_outputs.items():
            if outputs.get(name) != shape:
                raise ModelPackageError(
                    f"{self.model_path}: output {name!r} has shape {outputs.get(name)}, "
                    f"manifest implies {shape}"
                )
        self._output_names = list(expected_outputs)

    def raw_outputs(
        self, image_bgr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(heat logits C×H×W, log box sides 4×H×W, image-level logits C or None)."""
        tensor = preprocess(image_bgr, self.manifest.input)
        results = self.session.run(self._output_names, {self.manifest.input.input_name: tensor})
        image_logits = results[2][0] if len(results) > 2 else None
        return results[0][0], results[1][0], image_logits

    def detect(self, image_bgr: np.ndarray) -> tuple[list[Damage], float]:
        """Damages found in one BGR image, and the milliseconds it took (pre+run+decode)."""
        started = time.perf_counter_ns()
        heat, box, image_logits = self.raw_outputs(image_bgr)
        damages = decode(heat, box, self.manifest, image_logits)
        return damages, (time.perf_counter_ns() - started) / 1e6

    def grade(self, frame: Frame) -> GradedFrame:
        damages, infer_ms = self.detect(frame.image)
        return GradedFrame(frame, tuple(damages), frame_grade(damages), self.model_id, infer_ms)
