"""Refit a quantised model's image-level head on the features the quantised backbone computes.

The image head is a logistic regression on pooled features; fitted on FP32 features it is
thrown off by the small shifts INT8 rounding makes to them. Refitting it (on the same
training-split images and labels, never validation) on what the INT8 backbone really outputs
removes that mismatch. Plain numpy: technicians need no torch to quantise.

Two kinds of images train it. RDD frames carry boxes, so each type is present or absent on its
own (one-vs-rest). An office verdict is *one* type or none, so graded images are fitted as that
choice: a softmax over the types' logits and a "none" logit fixed at 0. The exported head is
unchanged (a sigmoid per type; the softmax is only the training loss), and a type's sigmoid
still orders it against "none", but a D00 crop now also teaches "not D20". Chosen on Konan
held out (issue 9; the same fine-tuned network refitted both ways, INT8): office macro-F1 over
D00, D20 and none 0.783 -> 0.825, D20 F1 0.575 -> 0.658, RDD image macro-F1 0.986 -> 0.979.
Graded images are used with their mirror image too: a close-up has no left or right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.grading.manifest import ModelManifest
from edge.grading.preprocess import preprocess
from models.training.dataset import Sample


def _probabilities(logits: np.ndarray, one_of: np.ndarray) -> np.ndarray:
    """Per-type sigmoids; on the ``one_of`` rows a softmax over the types and a 0 "none"."""
    p = 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))
    if one_of.any():
        z = logits[one_of]
        top = np.maximum(z.max(axis=1, keepdims=True), 0.0)  # the "none" logit is 0
        e = np.exp(z - top)
        p[one_of] = e / (np.exp(-top) + e.sum(axis=1, keepdims=True))
    return p


def fit_logistic_numpy(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1e-4,
    steps: int = 3000,
    lr: float = 0.05,
    one_of: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression by full-batch Adam; returns (W C×D, b C) on raw x. Rows are
    one-vs-rest, except the ``one_of`` rows (boolean mask), whose label is one type or none
    (all zeros): their loss is the softmax cross-entropy with a fixed "none" logit of 0. Both
    losses have the gradient p − y on the logits, only p differs."""
    one_of = np.zeros(len(x), bool) if one_of is None else one_of
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    w = np.zeros((y.shape[1], d))
    pos = np.clip(y.mean(0), 1e-3, 1 - 1e-3)
    b = np.log(pos / (1 - pos))
    m_w, v_w, m_b, v_b = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    for t in range(1, steps + 1):
        p = _probabilities(z @ w.T + b, one_of)
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
    model_path: Path,
    manifest: ModelManifest,
    samples: list[Sample],
    codes: tuple[str, ...],
    verdicts: Sequence[Sample] = (),
) -> int:
    """Rewrite the Gemm of the image head in ``model_path`` in place; returns images used.
    ``samples`` are frames with boxes (one-vs-rest); ``verdicts`` are office-graded images,
    one type or none each (see the module docstring), used with their mirror image too."""
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
    features, labels, one_of, used = [], [], [], 0
    for s, is_verdict in [(s, False) for s in samples] + [(v, True) for v in verdicts]:
        image = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        used += 1
        for view in (image, image[:, ::-1].copy()) if is_verdict else (image,):
            (row,) = session.run(
                [pooled], {manifest.input.input_name: preprocess(view, manifest.input)}
            )
            features.append(row.reshape(-1))
            labels.append([float(any(b.code == c for b in s.boxes)) for c in codes])
            one_of.append(is_verdict)
    w, b = fit_logistic_numpy(
        np.array(features, np.float64), np.array(labels, np.float64), one_of=np.array(one_of)
    )
    trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
    weights = {i.name: i for i in graph.initializer}
    weights[gemm.input[1]].CopyFrom(
        numpy_helper.from_array((w if trans_b else w.T).astype(np.float32), gemm.input[1])
    )
    weights[gemm.input[2]].CopyFrom(numpy_helper.from_array(b.astype(np.float32), gemm.input[2]))
    onnx.save(model, str(model_path))
    return used
