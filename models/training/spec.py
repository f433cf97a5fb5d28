"""What the trained network expects and emits: the source of the manifest's input/classes."""

from __future__ import annotations

from edge.grading.manifest import ClassSpec, InputSpec

CLASS_CODES: tuple[str, ...] = ("D00", "D10", "D20", "D40")

# EfficientNet-Lite was trained on inputs scaled to about [-1, 1].
MEAN = (127.0, 127.0, 127.0)
STD = (128.0, 128.0, 128.0)

CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec(
        code="D00", name_en="longitudinal crack", name_ja="縦ひび割れ", threshold=0.3, grade=1
    ),
    ClassSpec(code="D10", name_en="transverse crack", name_ja="横ひび割れ", threshold=0.3, grade=1),
    ClassSpec(
        code="D20", name_en="alligator crack", name_ja="亀甲状ひび割れ", threshold=0.3, grade=2
    ),
    ClassSpec(code="D40", name_en="pothole", name_ja="ポットホール", threshold=0.3, grade=3),
)


def input_spec(size: int) -> InputSpec:
    return InputSpec(width=size, height=size, colour_order="RGB", mean=MEAN, std=STD)
