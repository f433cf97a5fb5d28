"""The pieces of `model adapt` that need torch: the shipped package rebuilt as a trainable
network, and a run that shows its progress and resumes from its run folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.grading.grader import Grader
from edge.grading.manifest import load_manifest
from edge.grading.preprocess import preprocess

from support.adapt import graded_crops, tiny_voc
from support.model_data import SHIPPED_MODELS, real_frames

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

torch = pytest.importorskip("torch", reason="needs the train extra (installed by .ci/run)")
EXE = str(Path(sys.executable).with_name("roadpatrol"))
INT8 = SHIPPED_MODELS / "road-damage-1.1.0.json"


def test_the_rebuilt_base_computes_what_its_fp32_package_computes() -> None:
    from models.adapt.base_weights import load_base

    model, manifest = load_base(INT8)  # an INT8 package leads to its FP32 export
    assert manifest.model_id == "road-damage-fp32-1.1.0"
    grader = Grader(SHIPPED_MODELS / "road-damage-fp32-1.1.0.json", threads=1)
    for frame in real_frames(3):
        expected = grader.raw_outputs(frame)
        with torch.no_grad():
            got = model(torch.from_numpy(preprocess(frame, manifest.input)))
        for want, have in zip(expected, got, strict=True):
            assert want is not None
            np.testing.assert_allclose(have[0].numpy(), want, atol=2e-4)


def _adapt(
    tmp_path: Path, out: str, steps: int, seed: int = 7, leave_out: str = "nagakute"
) -> subprocess.CompletedProcess[str]:
    argv = [EXE, "model", "adapt", "--base", str(INT8), "--graded", str(tmp_path / "graded"),
            "--voc", str(tmp_path / "voc"), "--out", str(tmp_path / out), "--run",
            str(tmp_path / "run"), "--version", "1.2.0", "--max-steps", str(steps),
            "--rehearsal-images", "8", "--graded-per-step", "4", "--rdd-per-step", "4",
            "--views", "2", "--seed", str(seed)]  # fmt: skip
    argv += ["--leave-out", leave_out] if leave_out else []
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_a_run_shows_progress_with_eta_and_resumes_from_its_run_folder(tmp_path: Path) -> None:
    tiny_voc(tmp_path / "voc", train=16, val=8)
    graded_crops(tmp_path / "graded", 3, ("konan", "muroran", "nagakute"), ("D00", "D20", "none"))
    first = _adapt(tmp_path, "a", 2)  # nagakute left out: neither trained on nor held out
    assert first.returncode == 0, first.stderr
    assert "adapt: 100%" in first.stderr and "2/2 [" in first.stderr and "<" in first.stderr
    assert "resuming" not in first.stdout
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert ckpt["steps"] == 2
    features = sorted((tmp_path / "run" / "features").glob("graded*/*.npz"))
    assert {f.parent.name for f in features} == {"graded", "graded-view1"}  # plain + augmented
    stamps = [f.stat().st_mtime_ns for f in features]
    second = _adapt(tmp_path, "b", 3)  # the same run folder, one step more
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout and "after step 2 of 3" in second.stdout
    assert [f.stat().st_mtime_ns for f in features] == stamps  # cached features reused
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)["steps"] == 3
    other = _adapt(tmp_path, "c", 4, seed=8)  # another recipe cannot resume this run
    assert other.returncode == 2, other.stderr
    assert "seed 7 (now 8)" in other.stderr and "another --run" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    more = _adapt(tmp_path, "d", 4, leave_out="")  # nagakute trained on too: other images
    assert more.returncode == 2, more.stderr
    assert "9 graded images" in more.stderr and "(now base" in more.stderr
    assert "18 graded images" in more.stderr and not (tmp_path / "d").exists()
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    manifest = load_manifest(Path(summary["int8"]))
    assert manifest.precision == "int8" and not manifest.default_for_vehicles
    assert manifest.training["adapt"]["history"][-1]["step"] == 3
    assert manifest.training["adapt"]["graded_views"] == 2
    assert manifest.training["adapt"]["seed"] == 7  # so the run can be repeated as it was
    assert manifest.training["heldout_group"] == "konan"  # held out by city, never at random
    assert manifest.training["graded_sources"][0]["groups"] == {
        "konan": 9, "muroran": 9, "nagakute": 9,
    }  # fmt: skip
    assert manifest.training["graded_left_out_groups"] == {"nagakute": 9}
    assert "left out: nagakute (9)" in first.stdout
    # What the gate checks a folder against: the trained images' file digests and groups.
    assert manifest.training["graded_train_groups"] == ["muroran"]
    digests = {
        hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in (tmp_path / "graded").rglob("*.png")
    }
    trained = set(manifest.training["graded_train_sha256_16"])
    assert len(trained) == 9 and trained < digests
    held = {
        hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in (tmp_path / "graded").rglob("*_konan_*")
    }
    assert len(held) == 9 and not held & trained
    left = {
        hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in (tmp_path / "graded").rglob("*_nagakute_*")
    }
    assert len(left) == 9 and not left & trained
    assert not (tmp_path / "run" / "heldout-nagakute").exists()
    # ...but written apart, as label folders, for scoring on a city the model has not seen.
    left_dir = tmp_path / "run" / "leftout-nagakute"
    assert f"left out nagakute: its images are in {left_dir}" in first.stdout
    assert summary["left_out"] == {"nagakute": str(left_dir)}
    assert {
        hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in left_dir.rglob("*.png")
    } == left
    assert (
        sorted(p.parent.name for p in left_dir.rglob("*.png"))
        == ["D00"] * 3 + ["D20"] * 3 + ["none"] * 3
    )
    assert "graded images" in (manifest.quantization or {})["image_head_refit_on_int8_features"]
    assert manifest.metrics["office_heldout"]["group"] == "konan"


def _tiny_training_set(tmp_path: Path) -> tuple[list[Any], list[Any]]:
    """Six real office crops of one city (D00, D20, none) and nine tiny RDD frames with boxes:
    enough for a few `fine_tune` steps."""
    from models.adapt.graded import GradedImage
    from models.training.dataset import load_voc_dir
    from models.training.spec import CLASS_CODES

    voc = tiny_voc(tmp_path / "voc", train=8, val=1)
    crops = graded_crops(tmp_path / "graded", 2, ("konan",), ("D00", "D20", "none"))
    graded = [GradedImage(p, p.parent.name, "konan") for p in sorted(crops.rglob("*.png"))]
    return graded, load_voc_dir(voc, CLASS_CODES)


def test_training_from_a_stride_16_block_moves_it_and_keeps_the_blocks_before(
    tmp_path: Path,
) -> None:
    from models.adapt.base_weights import load_base
    from models.adapt.features import cache_folder, graded_views, trunk_features
    from models.adapt.train import AdaptOptions, fine_tune

    graded, rdd = _tiny_training_set(tmp_path)
    model, manifest = load_base(INT8)
    size = manifest.input.width
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opts = AdaptOptions(
        run=tmp_path / "run", train_from_block=8, max_steps=2, graded_per_step=4, rdd_per_step=4
    )
    cache = cache_folder(opts.run, opts.last_frozen_block)
    assert cache.name == "features-block7"
    g = graded_views(model, [x.path for x in graded], size, cache, 1, opts.last_frozen_block)
    assert g.last_frozen.shape[1:] == (80, size // 16, size // 16)  # block 7: 80 channels
    rdd_paths = [s.image_path for s in rdd]
    r = trunk_features(model, rdd_paths, size, cache / "rdd", "RDD", last_frozen=7)
    fine_tune(model, size, (graded, g), (rdd, r), opts)
    after = model.state_dict()
    moved = {
        int(k.split(".")[2])
        for k in before
        if k.startswith("backbone._blocks.") and not torch.equal(before[k], after[k])
    }
    assert moved == set(range(8, 16)), sorted(moved)
    assert torch.equal(before["backbone._conv_stem.weight"], after["backbone._conv_stem.weight"])


def test_the_one_of_loss_makes_a_verdicts_types_compete() -> None:
    """An office verdict names one type or none: under `--graded-loss one-of` the types share a
    softmax with a "none" logit fixed at 0, so a D20 crop costs more when its D00 score is as
    high as its D20 score, however high D20 is on its own, and a none crop's target is that
    fixed logit. The values are worked out by hand from the softmax, not by the code."""
    import math

    from models.adapt.train import GradedLoss, _graded_loss

    d20, none = [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]  # verdicts over D00, D10, D20, D40
    flat = torch.full((1, 4, 2, 2), -9.0)  # a heat map with no peak: only the image loss moves

    def image_loss(logits: list[float], verdict: list[float], how: GradedLoss) -> float:
        return float(_graded_loss(flat, torch.tensor([logits]), torch.tensor([verdict]), how)[0])

    # D20 at 4, D00 at 4 (a rival) against D00 at -4 (no rival): the rival costs log-odds.
    rival = image_loss([4.0, -4.0, 4.0, -4.0], d20, "one-of")
    alone = image_loss([-4.0, -4.0, 4.0, -4.0], d20, "one-of")
    e = math.exp
    assert rival == pytest.approx(-math.log(e(4) / (2 * e(4) + 2 * e(-4) + 1)) / 4, rel=1e-5)
    assert alone == pytest.approx(-math.log(e(4) / (e(4) + 3 * e(-4) + 1)) / 4, rel=1e-5)
    assert rival > 2.5 * alone
    # A none verdict: every type's logit competes with the fixed 0.
    assert image_loss([0.0, 0.0, 0.0, 0.0], none, "one-of") == pytest.approx(math.log(5) / 4)
    # The independent loss is the mean of the per-type BCEs, rival or not.
    independent = image_loss([4.0, -4.0, 4.0, -4.0], d20, "independent")
    bce = lambda z, t: math.log1p(e(-z)) if t else math.log1p(e(z))  # noqa: E731
    assert independent == pytest.approx(
        (bce(4, 0) + bce(-4, 0) + bce(4, 1) + bce(-4, 0)) / 4, rel=1e-5
    )


def test_a_seed_repeats_its_run_and_another_seed_makes_another(tmp_path: Path) -> None:
    """One `model adapt` run moves the held-out figures by a few hundredths with its seed
    (README), so a technician compares recipes over seeds: the same seed must give the same
    weights again, and another seed other batches."""
    from models.adapt.base_weights import load_base
    from models.adapt.features import cache_folder, graded_views, trunk_features
    from models.adapt.train import AdaptOptions, fine_tune

    graded, rdd = _tiny_training_set(tmp_path)

    def heat_weights(seed: int, run: str) -> torch.Tensor:
        model, manifest = load_base(INT8)
        size = manifest.input.width
        opts = AdaptOptions(
            run=tmp_path / run, max_steps=3, graded_per_step=4, rdd_per_step=4, seed=seed
        )
        cache = cache_folder(tmp_path / "cache", opts.last_frozen_block)
        g = graded_views(model, [x.path for x in graded], size, cache, 1, opts.last_frozen_block)
        r = trunk_features(model, [s.image_path for s in rdd], size, cache / "rdd", "RDD")
        fine_tune(model, size, (graded, g), (rdd, r), opts)
        return model.state_dict()["heat.weight"].clone()

    first, again, other = heat_weights(0, "a"), heat_weights(0, "b"), heat_weights(1, "c")
    assert torch.equal(first, again)
    assert not torch.allclose(first, other, atol=1e-6)
