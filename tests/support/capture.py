"""Real inputs for the capture tests: road images from the shared data, and videos made of them.

RDD2022 China_MotorBike sample frames (Arya, Maeda, Sekimoto et al., CC BY-SA 4.0).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLE_FRAMES = SHARED_DATA / "rdd2022_china_motorbike" / "sample_frames"


def sample_frame_paths(n: int, start: int = 0) -> list[Path]:
    paths = sorted(SAMPLE_FRAMES.glob("*.jpg"))[start : start + n]
    assert len(paths) == n, f"need {n} sample frames in {SAMPLE_FRAMES}, found {len(paths)}"
    return paths


def road_images(n: int, start: int = 0) -> list[np.ndarray]:
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sample_frame_paths(n, start)]
    assert all(img is not None for img in images)
    return images


def copy_frames(folder: Path, n: int, start: int = 0) -> list[Path]:
    """Copy ``n`` real road frames into ``folder``; returns the copies in name order."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, folder / p.name)) for p in sample_frame_paths(n, start)]


def write_video(path: Path, images: list[np.ndarray], fps: float, size=(640, 360)) -> None:
    """An MJPEG AVI of the images scaled to ``size``, written with cv2.VideoWriter."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), f"cv2.VideoWriter cannot write {path}"
    for img in images:
        writer.write(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    writer.release()


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, step_s=0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()
