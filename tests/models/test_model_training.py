"""Training on a few real RDD images: one step, a checkpoint, resuming; the fixed split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.training.dataset import image_number, is_validation, load_voc_dir, make_targets, split

from support.model_data import RDD_TRAIN

torch = pytest.importorskip("torch", reason="needs the train extra (installed by .ci/run)")


def test_split_is_by_blocks_of_consecutive_images_and_about_80_20() -> None:
    samples = load_voc_dir(RDD_TRAIN, ("D00", "D10", "D20", "D40"))
    train, val = split(samples)
    assert len(train) + len(val) == len(samples) == 1977
    assert 0.18 < len(val) / len(samples) < 0.22
    val_numbers = {image_number(s.image_path) for s in val}
    # a drive's neighbouring frames are on one side: no validation image has a training
    # neighbour inside its block of 40
    for n in val_numbers:
        block = range(n - n % 40, n - n % 40 + 40)
        assert all(m in val_numbers for m in block if m <= 1976)
    assert all(not is_validation(s.image_path) for s in train)


def test_repair_boxes_are_left_out_of_the_targets() -> None:
    xml = RDD_TRAIN / "annotations" / "xmls" / "China_MotorBike_000000.xml"
    assert "<name>Repair</name>" in xml.read_text()
    (sample,) = [
        s
        for s in load_voc_dir(RDD_TRAIN, ("D00", "D10", "D20", "D40"))
        if s.image_path.name == "China_MotorBike_000000.jpg"
    ]
    assert {b.code for b in sample.boxes} <= {"D00", "D20"} and len(sample.boxes) == 3


def test_targets_peak_at_box_centres_in_the_right_class() -> None:
    boxes = np.array([[0.25, 0.25, 0.75, 0.75]], np.float32)
    heat, box_t, weight = make_targets(boxes, np.array([3]), 4, 8, 8)
    assert heat[3].max() == 1.0 and heat[:3].max() == 0.0
    y, x = np.unravel_index(np.argmax(heat[3]), heat[3].shape)
    assert (y, x) in {(3, 3), (3, 4), (4, 3), (4, 4)}  # the centre (0.5, 0.5) of an 8×8 map
    assert weight[y, x] > 0 and tuple(box_t[:, y, x]) == (0.25, 0.25, 0.75, 0.75)
    assert weight[0, 0] == 0.0  # outside the box: no regression


@pytest.mark.slow
def test_one_step_training_checkpoints_and_resumes(tmp_path: Path) -> None:
    from models.training.train import TrainOptions, build_model, train

    opts = TrainOptions(
        data=RDD_TRAIN,
        out=tmp_path / "run",
        epochs=1,
        input_size=64,
        batch_size=4,
        limit_images=4,
        threads=1,
    )
    weights = train(opts)
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 1
    trained = torch.load(weights, weights_only=True)
    fresh = build_model("pretrained", 64).state_dict()
    changed = [k for k in fresh if k.startswith("heat") and not torch.equal(fresh[k], trained[k])]
    assert changed, "one optimiser step must change the head"
    frozen = "backbone._conv_stem.weight"
    assert torch.equal(fresh[frozen], trained[frozen]), "the pretrained stem stays frozen"
    # run again with more epochs: it resumes after epoch 1 instead of starting over
    train(TrainOptions(**{**opts.__dict__, "epochs": 2}))
    meta = json.loads((tmp_path / "run" / "training.json").read_text())
    assert meta["epochs_done"] == 2 and [h["epoch"] for h in meta["history"]] == [1, 2]


@pytest.mark.slow
def test_train_command_refuses_a_folder_without_annotations(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("roadpatrol"))
    result = subprocess.run(
        [exe, "model", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "annotations/xmls" in result.stderr
