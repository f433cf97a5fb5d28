"""A shipped FP32 package back into a trainable RoadDamageNet.

Packages carry ONNX, not PyTorch checkpoints, and the exporter folded every batch norm into the
convolution before it. We rebuild the network and give each convolution the folded weights and
each batch norm the identity (scale 1, mean 0, variance 1 − eps) with the folded bias as its
shift, so the rebuilt net computes exactly what the package computes. Convolutions are matched
to the ONNX Conv nodes by the order they run in (the graph is traced in that order) and checked
by shape; the heads keep their names in the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.grading.manifest import ModelManifest, ModelPackageError, load_manifest, verify_file
from models.training.net import RoadDamageNet
from models.training.spec import CLASS_CODES


def fp32_manifest_of(package: Path) -> Path:
    """The FP32 package behind ``package``: itself, or the one an INT8 manifest names."""
    manifest_path = package if package.suffix == ".json" else package.with_suffix(".json")
    manifest = load_manifest(manifest_path)
    if manifest.precision == "fp32":
        return manifest_path
    fp32 = (manifest.training or {}).get("fp32_package")
    if not fp32:
        raise ModelPackageError(
            f"{manifest_path}: an INT8 package that names no FP32 package (training.fp32_package)"
        )
    candidate = manifest_path.parent / f"{fp32}.json"
    if not candidate.is_file():
        raise ModelPackageError(f"{manifest_path}: its FP32 package {candidate} is not there")
    return candidate


def _conv_bn_pairs(
    model: RoadDamageNet, size: int
) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution in the order forward() runs it, with the batch norm right after it."""
    calls: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append(mod))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for i, mod in enumerate(calls):
        if isinstance(mod, nn.Conv2d):
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            pairs.append((mod, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    return pairs


def load_base(package: Path) -> tuple[RoadDamageNet, ModelManifest]:
    """The base package's network as a RoadDamageNet with its image head (eval mode)."""
    import onnx
    from onnx import numpy_helper

    manifest_path = fp32_manifest_of(package)
    manifest = load_manifest(manifest_path)
    if manifest.class_codes() != CLASS_CODES or manifest.output.image_output is None:
        raise ModelPackageError(
            f"{manifest_path}: adapt needs a RoadDamageNet package with classes "
            f"{', '.join(CLASS_CODES)} and an image head"
        )
    size = manifest.input.width
    graph = onnx.load(str(verify_file(manifest, manifest_path))).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    model = RoadDamageNet(len(CLASS_CODES), size, pretrained=False)
    model.image_head = nn.Linear(320, len(CLASS_CODES))
    onnx_convs = [n for n in graph.node if n.op_type == "Conv"]
    pairs = _conv_bn_pairs(model, size)
    if len(onnx_convs) != len(pairs):
        raise ModelPackageError(
            f"{manifest_path}: {len(onnx_convs)} convolutions in the graph, the network has "
            f"{len(pairs)}: not a RoadDamageNet export"
        )
    with torch.no_grad():
        for node, (conv, bn) in zip(onnx_convs, pairs, strict=True):
            w = weights[node.input[1]]
            b = weights[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ModelPackageError(
                    f"{manifest_path}: Conv {node.name} has weights {w.shape}, the network "
                    f"expects {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            if bn is None:
                assert conv.bias is not None
                conv.bias.copy_(torch.from_numpy(np.array(b)))
                continue
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b)))
            assert bn.running_mean is not None and bn.running_var is not None
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        gemm = next(n for n in graph.node if n.output[0] == manifest.output.image_output)
        gw = weights[gemm.input[1]]
        trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
        model.image_head.weight.copy_(torch.from_numpy(np.array(gw if trans_b else gw.T)))
        model.image_head.bias.copy_(torch.from_numpy(np.array(weights[gemm.input[2]])))
    return model.eval(), manifest
