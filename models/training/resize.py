"""A package's network re-exported at another input size (no training).

The net is fully convolutional (the image head pools globally), so the same weights run at
any input that is a multiple of 32. A larger input shows cracks a few pixels wider; whether
that pays is measured on the validation split (README, "Input size"). The image head can be
refitted on the training split at the new size, since pooled features shift with scale.
"""

from __future__ import annotations

from pathlib import Path

from edge.grading.manifest import ModelPackageError
from models.adapt.base_weights import load_base
from models.training.export import fit_image_head, write_fp32
from models.training.net import RoadDamageNet
from models.training.spec import CLASS_CODES

SIZE_MULTIPLE = 32  # the stride-32 tap must tile the input exactly


def rebuilt_at(package: Path, size: int) -> RoadDamageNet:
    """The package's FP32 network (with its image head) built for ``size``×``size`` inputs."""
    if size <= 0 or size % SIZE_MULTIPLE:
        raise ModelPackageError(f"input size {size}: must be a positive multiple of 32")
    base, _ = load_base(package)
    model = RoadDamageNet(len(CLASS_CODES), size, pretrained=False)
    assert base.image_head is not None
    model.image_head = type(base.image_head)(base.image_head.in_features, len(CLASS_CODES))
    model.load_state_dict(base.state_dict())
    return model.eval()


def resize_package(
    package: Path,
    out_dir: Path,
    *,
    size: int,
    name: str,
    version: str,
    refit_voc: Path | None = None,
) -> Path:
    """Export ``package``'s network at ``size`` as an FP32 package (thresholds copied, to be
    tuned again); with ``refit_voc`` the image head is refitted on that folder's training
    split at the new size."""
    _, manifest = load_base(package)
    model = rebuilt_at(package, size)
    head = fit_image_head(model, refit_voc, size) if refit_voc is not None else {}
    return write_fp32(
        model,
        size,
        out_dir,
        name=name,
        version=version,
        output_spec=manifest.output,
        classes=manifest.classes,
        grade_rules=manifest.grade_rules,
        training={
            **(manifest.training or {}),
            "resized_from": f"{manifest.name}-{manifest.version} "
            f"({manifest.input.width}x{manifest.input.height}, sha256 {manifest.sha256})",
            "input_size": size,
            **head,
        },
    )
