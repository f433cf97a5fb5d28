"""Detection and classification metrics, in plain numpy-free Python so they can be checked by hand.

Box level follows the RDD protocol: a detection is a true positive when it overlaps a not yet
matched ground-truth box of the same type with IoU ≥ 0.5; detections are matched strongest
first; unmatched ground truth counts as a miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.grading.decode import box_iou as iou

BoxT = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Labelled:
    code: str
    box: BoxT


@dataclass(frozen=True, slots=True)
class Scored:
    code: str
    score: float
    box: BoxT


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
        }


@dataclass
class DetectionTally:
    """Accumulates image-level and box-level counts per class over many images."""

    codes: tuple[str, ...]
    iou_threshold: float = 0.5
    image: dict[str, Counts] = field(default_factory=dict)
    box: dict[str, Counts] = field(default_factory=dict)
    images: int = 0

    def __post_init__(self) -> None:
        self.image = {c: Counts() for c in self.codes}
        self.box = {c: Counts() for c in self.codes}

    def add(self, truth: Sequence[Labelled], found: Iterable[Scored]) -> None:
        self.images += 1
        found = sorted((f for f in found if f.code in self.codes), key=lambda f: -f.score)
        for code in self.codes:
            has_truth = any(t.code == code for t in truth)
            has_found = any(f.code == code for f in found)
            counts = self.image[code]
            counts.tp += has_truth and has_found
            counts.fp += has_found and not has_truth
            counts.fn += has_truth and not has_found
        matched: set[int] = set()
        for det in found:
            best, best_iou = None, self.iou_threshold
            for i, t in enumerate(truth):
                if i in matched or t.code != det.code:
                    continue
                overlap = iou(det.box, t.box)
                if overlap >= best_iou:
                    best, best_iou = i, overlap
            if best is None:
                self.box[det.code].fp += 1
            else:
                matched.add(best)
                self.box[det.code].tp += 1
        for i, t in enumerate(truth):
            if i not in matched and t.code in self.codes:
                self.box[t.code].fn += 1

    def macro_f1(self, level: str) -> float:
        table = self.image if level == "image" else self.box
        return sum(c.f1 for c in table.values()) / len(table)


def confusion_report(
    pairs: Iterable[tuple[str, str]], labels: tuple[str, ...]
) -> dict[str, object]:
    """Single-label classification: per class P/R/F1, macro-F1 over ``labels``, confusion matrix.

    ``pairs`` are (truth, predicted); labels may include "none", which is kept out of the macro
    average (it is the absence of damage, not a damage type) but shown in the matrix.
    """
    pairs = list(pairs)
    names = list(labels)
    for t, p in pairs:
        for x in (t, p):
            if x not in names:
                names.append(x)
    matrix = {t: dict.fromkeys(names, 0) for t in names}
    for t, p in pairs:
        matrix[t][p] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    for code in names:
        c = Counts(
            tp=matrix[code][code],
            fp=sum(matrix[t][code] for t in names if t != code),
            fn=sum(matrix[code][p] for p in names if p != code),
        )
        per_class[code] = c.as_dict()
    scored = [c for c in labels if c != "none"]
    macro = sum(float(per_class[c]["f1"]) for c in scored) / len(scored) if scored else 0.0
    return {"macro_f1": round(macro, 4), "per_class": per_class, "confusion": matrix}
