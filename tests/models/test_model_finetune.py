"""Issue 13's training tools: a package re-exported at a larger input, fine-tuning from a
package (its folded batch-norm statistics kept), and per-class heat-map loss weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.grading.grader import Grader
from edge.grading.manifest import ModelPackageError, load_manifest

from support.model_data import RDD_TRAIN, SHIPPED_MODELS, real_frames

torch = pytest.importorskip("torch", reason="needs the train extra (installed by .ci/run)")

BASE_FP32 = SHIPPED_MODELS / "road-damage-fp32-1.2.0.json"


pytestmark = pytest.mark.slow  # torch: a re-export and a training step per test

def test_resized_package_at_the_same_size_reproduces_the_package_and_runs_at_320(
    tmp_path: Path,
) -> None:
    from models.training.resize import resize_package

    frame = real_frames(1)[0]
    base = Grader(BASE_FP32, threads=1).raw_outputs(frame)
    same = resize_package(BASE_FP32, tmp_path, size=256, name="rd", version="0.0.1")
    again = Grader(same, threads=1).raw_outputs(frame)
    for got, want in zip(again, base, strict=True):
        assert want is not None and got is not None
        np.testing.assert_allclose(got, want, atol=2e-3)
    larger = resize_package(BASE_FP32, tmp_path, size=320, name="rd", version="0.0.2")
    manifest = load_manifest(larger)
    assert (manifest.input.width, manifest.input.height) == (320, 320)
    assert "road-damage-fp32-1.2.0" in manifest.training["resized_from"]
    heat, box, image = Grader(larger, threads=1).raw_outputs(frame)
    assert heat.shape == (4, 40, 40) and box.shape == (4, 40, 40) and image is not None


def test_an_input_size_the_net_cannot_tile_is_refused(tmp_path: Path) -> None:
    from models.training.resize import rebuilt_at

    with pytest.raises(ModelPackageError, match="multiple of 32"):
        rebuilt_at(BASE_FP32, 300)


def test_class_weights_scale_only_their_class() -> None:
    from models.training.train import focal_loss

    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.random((2, 4, 8, 8), dtype=np.float32) * 0.9)
    target[:, :, 3, 3] = 1.0  # a positive in every class
    logits = torch.from_numpy(rng.normal(size=(2, 4, 8, 8)).astype(np.float32))
    only_d40 = torch.tensor([0.0, 0.0, 0.0, 1.0])
    changed = logits.clone()
    changed[:, :3] += 2.0  # other classes' predictions move: the D40-only loss must not
    assert focal_loss(logits, target, only_d40) == pytest.approx(
        focal_loss(changed, target, only_d40).item(), rel=1e-6
    )
    assert focal_loss(logits, target) != pytest.approx(focal_loss(changed, target).item())
    tripled = focal_loss(logits, target, torch.tensor([1.0, 1.0, 1.0, 3.0]))
    plain = focal_loss(logits, target)
    assert tripled.item() == pytest.approx(
        plain.item() + 2 * focal_loss(logits, target, only_d40).item(), rel=1e-5
    )


def test_fine_tuning_from_a_package_starts_from_it_and_keeps_its_statistics(
    tmp_path: Path,
) -> None:
    from models.training.resize import rebuilt_at
    from models.training.train import TrainOptions, train

    start = rebuilt_at(BASE_FP32, 64).state_dict()
    weights = train(
        TrainOptions(
            data=RDD_TRAIN,
            out=tmp_path / "run",
            epochs=1,
            input_size=64,
            batch_size=4,
            limit_images=4,
            threads=1,
            lr=1e-3,
            init_package=BASE_FP32,
            class_weights=(1.0, 1.0, 1.0, 2.0),
        )
    )
    tuned = torch.load(weights, weights_only=True)
    assert not any(k.startswith("image_head") for k in tuned)  # refitted at export
    assert not torch.equal(tuned["heat.weight"], start["heat.weight"])  # it trained
    # Small steps from the package's weights, not from ImageNet's or random ones.
    assert (tuned["heat.weight"] - start["heat.weight"]).abs().max() < 0.05
    # The package's batch norms are identities over folded convolutions: training with batch
    # statistics would overwrite them (and the running estimates with them).
    for key in ("lat8.1.running_mean", "lat8.1.running_var", "backbone._blocks.9._bn0.running_var"):
        assert torch.equal(tuned[key], start[key]), key
    assert torch.equal(tuned["backbone._conv_stem.weight"], start["backbone._conv_stem.weight"])
