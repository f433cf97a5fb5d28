"""Office-graded image folders (the layout `office export-graded` writes) as training data.

Every folder is checked completely before anything is trained or written: a bad folder stops
`model adapt` with one line naming the folder or file. Each image also gets a *group*, the unit
the held-out split works on, because neighbouring crops of one road are near-duplicates and a
random split would score the model on copies of what it trained on:

- the city in the file name (``D22_muroran_....png``: the layout of the shared Japanese set);
- otherwise the ISO week the vehicle captured it (``graded.csv``, written by export-graded);
- otherwise the folder's own name (one group).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2

LABELS = ("D00", "D10", "D20", "D40", "none")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
INDEX_NAME = "graded.csv"
_CITY = re.compile(r"^D\d\d_([a-z]+)_", re.IGNORECASE)


class GradedDataError(ValueError):
    """The graded folders cannot be used; the message names the folder or file."""


@dataclass(frozen=True, slots=True)
class GradedImage:
    path: Path
    label: str  # a type code or "none"
    group: str  # city, capture week or folder: the unit of the held-out split


@dataclass(frozen=True)
class GradedSet:
    images: tuple[GradedImage, ...]
    sources: tuple[dict[str, Any], ...]  # provenance, one entry per --graded folder
    left_out_images: tuple[GradedImage, ...] = ()  # set aside by --leave-out: unseen, to score on

    def groups(self) -> Counter[str]:
        return Counter(i.group for i in self.images)

    @property
    def left_out(self) -> tuple[tuple[str, int], ...]:
        """The groups set aside by --leave-out and their sizes, by name."""
        return tuple(sorted(Counter(i.group for i in self.left_out_images).items()))


def _index(folder: Path) -> dict[str, dict[str, str]]:
    """graded.csv rows by finding id (empty when the folder has none)."""
    path = folder / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return {row["finding_id"]: row for row in csv.DictReader(fh) if row.get("finding_id")}
    except (OSError, UnicodeDecodeError, KeyError, csv.Error) as exc:
        raise GradedDataError(f"{path}: not a readable export index ({exc})") from exc


def _iso_week(stamp: str) -> str | None:
    try:
        year, week, _ = datetime.fromisoformat(stamp.replace("Z", "+00:00")).isocalendar()
    except ValueError:
        return None
    return f"week-{year}-W{week:02d}"


def _label_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise GradedDataError(f"--graded {folder}: no such folder")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name not in LABELS]
    if unknown:
        raise GradedDataError(
            f"--graded {folder}: unknown sub-folder(s) {', '.join(unknown)}; "
            f"expected only {', '.join(LABELS)}"
        )
    return subdirs


def _images_in(label_dir: Path) -> list[Path]:
    paths = []
    for p in sorted(label_dir.iterdir()):
        if p.name.startswith("."):
            continue
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            raise GradedDataError(
                f"{p}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "label folders hold images only"
            )
        if cv2.imread(str(p), cv2.IMREAD_COLOR) is None:
            raise GradedDataError(f"{p}: not a readable image")
        paths.append(p)
    return paths


def _group(path: Path, row: dict[str, str] | None, folder: Path) -> str:
    city = _CITY.match(path.name)
    if city:
        return city.group(1).lower()
    week = _iso_week(row.get("captured_at_utc", "")) if row else None
    return week or folder.name


def _source(folder: Path, images: list[GradedImage], index: dict[str, dict[str, str]]) -> dict:
    rows = [index[i.path.stem] for i in images if i.path.stem in index]
    stamps = sorted(r["captured_at_utc"] for r in rows if r.get("captured_at_utc"))
    reviewers = sorted({r["reviewed_by"] for r in rows if r.get("reviewed_by")})
    digest = hashlib.sha256()
    for i in images:
        digest.update(f"{i.label}/{i.path.name}\n".encode())
    return {
        "folder": str(folder.resolve()),
        "images": len(images),
        "images_per_type": dict(sorted(Counter(i.label for i in images).items())),
        "groups": dict(sorted(Counter(i.group for i in images).items())),
        "captured_utc_range": [stamps[0], stamps[-1]] if stamps else None,
        "reviewers": reviewers or None,
        "index": INDEX_NAME if index else None,
        "file_list_sha256": digest.hexdigest(),
        "credit": _credit(folder),
    }


def _credit(folder: Path) -> str | None:
    """The source and licence lines of the folder's README.md, if it has one: data shipped in
    a model's provenance keeps its attribution."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines()
    start = next((i for i, line in enumerate(lines) if "Source:" in line), None)
    if start is None:
        return None
    block = [lines[start].strip(" -")]
    for line in lines[start + 1 :]:
        if not line.startswith("  ") or not line.strip():
            break
        block.append(line.strip())
    return " ".join(block)


def read_graded(folders: list[Path], min_classes: int = 2) -> GradedSet:
    """All images of the given folders, checked; raises GradedDataError naming what is wrong.
    Training needs ``min_classes`` = 2 (a model learns nothing from one class); scoring a
    model on a folder needs only 1."""
    images: list[GradedImage] = []
    sources = []
    for folder in folders:
        index = _index(folder)
        found = [
            GradedImage(path, label_dir.name, _group(path, index.get(path.stem), folder))
            for label_dir in _label_dirs(folder)
            for path in _images_in(label_dir)
        ]
        if not found:
            raise GradedDataError(
                f"--graded {folder}: no images (expected them in {', '.join(LABELS)} sub-folders)"
            )
        images.extend(found)
        sources.append(_source(folder, found, index))
    labels = Counter(i.label for i in images)
    if len(labels) < min_classes:
        (only,) = labels
        raise GradedDataError(
            f"--graded {', '.join(map(str, folders))}: every image is {only}: adapting needs "
            "at least two classes (damage and none, or two damage types)"
        )
    return GradedSet(tuple(images), tuple(sources))


def _listed(groups: Counter[str]) -> str:
    """Groups with their image counts, for a message naming what the user could have given."""
    return ", ".join(f"{g} ({n})" for g, n in sorted(groups.items()))


def leave_out(graded: GradedSet, groups: list[str], holdout: str | None) -> GradedSet:
    """The graded set without ``groups``: neither trained on nor held out (a city whose
    verdicts make the others worse, README issue 9). Refuses unknown groups, the held-out
    group, and leaving fewer than two classes."""
    if not groups:
        return graded
    sizes = graded.groups()
    unknown = [g for g in groups if g not in sizes]
    if unknown:
        raise GradedDataError(
            f"--leave-out {', '.join(unknown)}: no such group; the graded images have "
            f"{_listed(sizes)}"
        )
    if holdout in groups:
        raise GradedDataError(
            f"--leave-out {holdout}: that group is the held-out one (--holdout); "
            "leave out another, or hold out another"
        )
    kept = tuple(i for i in graded.images if i.group not in groups)
    aside = tuple(i for i in graded.images if i.group in groups)
    labels = {i.label for i in kept}
    if len(labels) < 2:
        raise GradedDataError(
            f"--leave-out {', '.join(groups)}: the images left show "
            f"{', '.join(sorted(labels)) or 'nothing'} only; adapting needs two classes"
        )
    return GradedSet(kept, graded.sources, aside)


def choose_holdout(graded: GradedSet, requested: str | None) -> str | None:
    """The group held out of training: ``requested``, or, among the groups whose removal leaves
    at least two classes to train on, the one whose size is closest to a fifth of the images,
    preferring groups that show two labels or more (None: no group can be spared)."""
    groups = graded.groups()
    if requested is not None:
        if requested not in groups:
            raise GradedDataError(
                f"--holdout {requested}: no such group; the graded images have {_listed(groups)}"
            )
        return requested
    labels_of = {g: {i.label for i in graded.images if i.group == g} for g in groups}
    rest_labels = {g: {i.label for i in graded.images if i.group != g} for g in groups}
    spare = [g for g in sorted(groups) if len(rest_labels[g]) >= 2]
    if not spare:
        return None
    target = len(graded.images) / 5
    return min(spare, key=lambda g: (len(labels_of[g]) < 2, abs(groups[g] - target), g))


def image_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of an image file's bytes: how a package's
    provenance names the graded images it was trained on, so that the gate can tell when it is
    asked to score a model on images the model has already seen."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def split_holdout(
    graded: GradedSet, holdout: str | None
) -> tuple[list[GradedImage], list[GradedImage]]:
    train = [i for i in graded.images if i.group != holdout]
    held = [i for i in graded.images if i.group == holdout]
    if holdout is not None and len({i.label for i in train}) < 2:
        raise GradedDataError(
            f"--holdout {holdout}: the images left for training show one class only"
        )
    return train, held


def write_tree(images: list[GradedImage], out: Path) -> Path:
    """The images as label folders under ``out`` (hard links where possible), for
    `model evaluate --folders` and `model compare --folders`."""
    import os
    import shutil

    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    for i in images:
        target = out / i.label / i.path.name
        if target.exists():
            continue
        try:
            os.link(i.path, target)
        except OSError:
            shutil.copyfile(i.path, target)
    return out
