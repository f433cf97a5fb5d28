"""Refit a quantised model's image-level head on the features the quantised backbone computes.

The image head is a logistic regression on pooled features; fitted on FP32 features it is
thrown off by the small shifts INT8 rounding makes to them. Refitting it (on the same
training-split images and labels, never validation) on what the INT8 backbone really outputs
removes that mismatch. Plain numpy: technicians need no torch to quantise.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.grading.manifest import ModelManifest
from edge.grading.preprocess import preprocess
from models.training.dataset import Sample


def fit_logistic_numpy(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-4, steps: int = 3000, lr: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest logistic regression by full-batch Adam; returns (W C×D, b C) on raw x."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    w = np.zeros((y.shape[1], d))
    pos = np.clip(y.mean(0), 1e-3, 1 - 1e-3)
    b = np.log(pos / (1 - pos))
    m_w, v_w, m_b, v_b = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    for t in range(1, steps + 1):
        p = 1.0 / (1.0 + np.exp(-(z @ w.T + b)))
        g = (p - y) / n
        g_w = g.T @ z + 2 * l2 * w
        g_b = g.sum(0)
        for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad**2
            param -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    w_raw = w / std
    return w_raw, b - w_raw @ mean


def refit_image_head(
    model_path: Path, manifest: ModelManifest, samples: list[Sample], codes: tuple[str, ...]
) -> int:
    """Rewrite the Gemm of the image head in ``model_path`` in place; returns images used."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    gemm = next(n for n in graph.node if n.output[0] == manifest.output.image_output)
    pooled = gemm.input[0]
    probe = onnx.load(str(model_path))
    probe.graph.output.append(
        onnx.helper.make_tensor_value_info(pooled, onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    features, labels = [], []
    for s in samples:
        image = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        (row,) = session.run(
            [pooled], {manifest.input.input_name: preprocess(image, manifest.input)}
        )
        features.append(row.reshape(-1))
        labels.append([float(any(b.code == c for b in s.boxes)) for c in codes])
    w, b = fit_logistic_numpy(np.array(features, np.float64), np.array(labels, np.float64))
    trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
    weights = {i.name: i for i in graph.initializer}
    weights[gemm.input[1]].CopyFrom(
        numpy_helper.from_array((w if trans_b else w.T).astype(np.float32), gemm.input[1])
    )
    weights[gemm.input[2]].CopyFrom(numpy_helper.from_array(b.astype(np.float32), gemm.input[2]))
    onnx.save(model, str(model_path))
    return len(features)
