"""The frozen trunk's features, computed once per image and kept in the run folder.

Adapting trains the stride-32 blocks, the neck and the heads, and with ``--train-from-block``
some of the stride-16 blocks too; the stem and the blocks before those stay as the base has
them. Their outputs (the stride-8 tap and the last frozen block's) therefore never change, and
computing them once instead of every step is what makes the fine-tuning fit in under an hour on
two CPU cores: the trunk up to the stride-16 tap costs about three quarters of a forward pass.
Chunks are written as they are computed (write, then rename), so an interrupted run resumes
where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.grading.preprocess import preprocess
from models.training.net import STRIDE16_BLOCK, RoadDamageNet
from models.training.spec import input_spec

CHUNK = 32  # images per cache file


@dataclass(frozen=True)
class Features:
    c8: np.ndarray  # N×40×(S/8)×(S/8), float16
    last_frozen: np.ndarray  # the last frozen block's output: N×112×(S/16)² for block 10


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    return image


def trunk_features(
    model: RoadDamageNet,
    paths: list[Path],
    size: int,
    cache: Path,
    desc: str,
    reader: Callable[[Path], np.ndarray] = _read,
    last_frozen: int = STRIDE16_BLOCK,
) -> Features:
    """Stride-8 features and block ``last_frozen``'s output for ``paths`` (in order), from
    ``cache`` where present (one cache folder per ``last_frozen``: see ``cache_folder``)."""
    cache.mkdir(parents=True, exist_ok=True)
    spec = input_spec(size)
    model.eval()
    parts8, parts_deep = [], []
    chunks = range(0, len(paths), CHUNK)
    for start in tqdm(chunks, desc=desc, unit="chunk", dynamic_ncols=True):
        file = cache / f"{start // CHUNK:05d}.npz"
        names = [p.name for p in paths[start : start + CHUNK]]
        if file.exists():
            with np.load(file) as z:
                if list(z["names"]) == names:
                    parts8.append(z["c8"])
                    parts_deep.append(z["last_frozen"])
                    continue
        x = torch.from_numpy(
            np.concatenate([preprocess(reader(p), spec) for p in paths[start : start + CHUNK]])
        )
        with torch.no_grad():
            c8, deep = model.trunk(x, upto=last_frozen)
        a8, a_deep = c8.numpy().astype(np.float16), deep.numpy().astype(np.float16)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, c8=a8, last_frozen=a_deep, names=np.array(names))
        tmp.replace(file)
        parts8.append(a8)
        parts_deep.append(a_deep)
    if not parts8:
        raise ValueError(f"{desc}: no images")
    return Features(np.concatenate(parts8), np.concatenate(parts_deep))


def augmented_reader(view: int) -> Callable[[Path], np.ndarray]:
    """Images as the base's training augments them (scale crop, mirror, brightness and
    contrast, blur, JPEG quality), the same for a given file and view on every run, so the
    cached views stay valid when a run resumes."""
    from models.training.dataset import augment

    def read(path: Path) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(f"{view}/{path.name}".encode()).digest()[:8])
        rng = np.random.default_rng(seed)
        image, _, _ = augment(_read(path), np.zeros((0, 4), np.float32), rng)
        return image

    return read


def cache_folder(run: Path, last_frozen: int) -> Path:
    """Where a run keeps its features: ``features/`` for the default split at block 10 (as
    runs always did), ``features-block{N}/`` for another."""
    return run / ("features" if last_frozen == STRIDE16_BLOCK else f"features-block{last_frozen}")


def graded_views(
    model: RoadDamageNet,
    paths: list[Path],
    size: int,
    cache: Path,
    views: int,
    last_frozen: int = STRIDE16_BLOCK,
) -> Features:
    """View 0 (the images as they are) and ``views - 1`` augmented views of each image,
    stacked view after view: row ``v * len(paths) + i`` is view v of image i."""
    parts = [
        trunk_features(
            model, paths, size, cache / "graded", "graded features", last_frozen=last_frozen
        )
    ]
    for v in range(1, views):
        parts.append(
            trunk_features(
                model, paths, size, cache / f"graded-view{v}", f"graded view {v}/{views - 1}",
                reader=augmented_reader(v), last_frozen=last_frozen,
            )
        )  # fmt: skip
    return Features(
        np.concatenate([p.c8 for p in parts]), np.concatenate([p.last_frozen for p in parts])
    )
