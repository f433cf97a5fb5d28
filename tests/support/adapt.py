"""Small real data sets for the adapt and gate tests: a few RDD images in their own VOC folder
(training and validation blocks both present) and office crops from two cities."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.training.dataset import is_validation

from support.model_data import RDD_TRAIN, SHARED_DATA

GRADED = SHARED_DATA / "office_graded_japan"


def tiny_voc(root: Path, train: int = 24, val: int = 12) -> Path:
    """The first ``train`` training-split and ``val`` validation-split RDD images with their
    annotations, in the layout `model train`, `adapt`, `tune` and `compare` read."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "xmls").mkdir(parents=True)
    taken = {True: 0, False: 0}
    limit = {True: val, False: train}
    for xml in sorted((RDD_TRAIN / "annotations" / "xmls").glob("*.xml")):
        image = RDD_TRAIN / "images" / xml.with_suffix(".jpg").name
        side = is_validation(image)
        if taken[side] >= limit[side] or not image.is_file():
            continue
        shutil.copy(xml, root / "annotations" / "xmls" / xml.name)
        shutil.copy(image, root / "images" / image.name)
        taken[side] += 1
        if taken == {True: val, False: train}:
            break
    return root


def graded_crops(
    root: Path, per_city: int, cities: tuple[str, ...], labels: tuple[str, ...]
) -> Path:
    """The first ``per_city`` crops of each label and city from the shared office set."""
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for city in cities:
            found = [p for p in sorted((GRADED / label).iterdir()) if f"_{city}_" in p.name]
            for src in found[:per_city]:
                shutil.copy(src, root / label / src.name)
    return root


def rdd_folders(root: Path, per_label: int) -> Path:
    """RDD training-split frames showing one damage type only (or none), as label folders:
    frames the shipped model grades well, unlike the office's close-up crops."""
    from models.training.dataset import load_voc_dir, split

    train, _ = split(load_voc_dir(RDD_TRAIN, ("D00", "D10", "D20", "D40")))
    for label, codes in (("D00", {"D00"}), ("D20", {"D20"}), ("none", set())):
        (root / label).mkdir(parents=True)
        only = [s for s in train if {b.code for b in s.boxes} == codes][:per_label]
        for s in only:
            shutil.copy(s.image_path, root / label / s.image_path.name)
    return root
