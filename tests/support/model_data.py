"""Real model packages for tests: a small network built and exported here, and the shipped ones."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
RDD_TRAIN = SHARED_DATA / "rdd2022_china_motorbike" / "train"
SAMPLE_FRAMES = SHARED_DATA / "rdd2022_china_motorbike" / "sample_frames"
SHIPPED_MODELS = REPO / "models"


def real_frames(n: int) -> list[np.ndarray]:
    paths = sorted(SAMPLE_FRAMES.glob("*.jpg"))[:n]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    assert len(images) == n and all(i is not None for i in images)
    return images


def build_small_package(out_dir: Path, input_size: int = 64, seed: int = 0) -> Path:
    """Export a randomly initialised RoadDamageNet as an FP32 package (needs torch)."""
    import torch

    from models.training.export import export_package
    from models.training.net import RoadDamageNet

    torch.manual_seed(seed)
    run = out_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    model = RoadDamageNet(4, input_size, pretrained=False)
    torch.save(model.state_dict(), run / "weights.pt")
    (run / "training.json").write_text(
        json.dumps(
            {
                "init": "scratch",
                "input_size": input_size,
                "epochs_done": 0,
                "history": [],
                "train_images": 0,
                "val_images": 0,
                "data": "none",
            }
        )
    )
    return export_package(run, out_dir / "pkg", name="small", version="0.0.1", image_head=False)
