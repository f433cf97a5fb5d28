"""A YOLOv8n-shaped graph with random weights, for latency comparisons only.

The road-damage challenges' speed-ranked entries run YOLO-n models at 640 px; issue 13's bar is
our INT8 model at no more than half an INT8 YOLOv8n's time on the same cores. Nothing is
downloaded: the graph is built here from YOLOv8's published layout (width 0.25, depth 0.33:
CSP-Darknet with C2f blocks, SPPF, a PAN neck and the decoupled head at strides 8/16/32,
80 classes, 16 distribution bins per box side; about 3.2 M parameters, 8.7 GFLOPs at 640), in
eval mode so the exporter folds each batch norm into its convolution, as a trained export
would be. Its outputs are the raw head maps; the box decoding (a softmax over the bins) is a
few thousand cells and left out, which only flatters YOLOv8n.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _conv(c_in: int, c_out: int, k: int = 1, s: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU()
    )


class _Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool):
        super().__init__()
        self.cv1, self.cv2, self.add = _conv(c, c, 3), _conv(c, c, 3), shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class _C2f(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = _conv(c_in, 2 * self.c)
        self.cv2 = _conv((2 + n) * self.c, c_out)
        self.m = nn.ModuleList(_Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class _SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.cv1, self.cv2 = _conv(c_in, c_in // 2), _conv(c_in // 2 * 4, c_out)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class YoloV8n(nn.Module):
    def __init__(self, classes: int = 80, bins: int = 16):
        super().__init__()
        self.p3 = nn.Sequential(
            _conv(3, 16, 3, 2), _conv(16, 32, 3, 2), _C2f(32, 32, 1, True),
            _conv(32, 64, 3, 2), _C2f(64, 64, 2, True),
        )  # fmt: skip
        self.p4 = nn.Sequential(_conv(64, 128, 3, 2), _C2f(128, 128, 2, True))
        self.p5 = nn.Sequential(_conv(128, 256, 3, 2), _C2f(256, 256, 1, True), _SPPF(256, 256))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.td4, self.td3 = _C2f(384, 128, 1, False), _C2f(192, 64, 1, False)
        self.down3, self.bu4 = _conv(64, 64, 3, 2), _C2f(192, 128, 1, False)
        self.down4, self.bu5 = _conv(128, 128, 3, 2), _C2f(384, 256, 1, False)
        c_box, c_cls = max(16, 64 // 4, bins * 4), max(64, min(classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(_conv(c, c_box, 3), _conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * bins, 1))
            for c in (64, 128, 256)
        )
        self.cls = nn.ModuleList(
            nn.Sequential(_conv(c, c_cls, 3), _conv(c_cls, c_cls, 3), nn.Conv2d(c_cls, classes, 1))
            for c in (64, 128, 256)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.p3(x)
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        t4 = self.td4(torch.cat([self.up(p5), p4], 1))
        n3 = self.td3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        maps = [
            torch.cat([b(f), c(f)], 1).flatten(2)
            for f, b, c in zip((n3, n4, n5), self.box, self.cls, strict=True)
        ]
        return torch.cat(maps, 2)


def export_yolov8n(path: Path, size: int = 640, seed: int = 0) -> Path:
    """The random-weight YOLOv8n graph as FP32 ONNX (input ``image``, 1×3×size×size)."""
    torch.manual_seed(seed)
    model = YoloV8n().eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["image"],
        output_names=["out"],
        opset_version=17,
        dynamo=False,
    )
    return path
