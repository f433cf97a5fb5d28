"""Repeat sightings: the same damage in consecutive frames becomes one finding.

As the car drives on, a crack slides down the picture but keeps its place across it, so two
sightings match on damage type and horizontal overlap, within a short distance driven. The
finding keeps its best frame (highest grade, then highest score). Frames are only merged when
the better frame shows every damage type of the other one: merging never hides a type.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.types import Damage


def x_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of the boxes' horizontal extents."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    union = max(a[2], b[2]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def rank(damages: tuple[Damage, ...]) -> tuple[int, float]:
    return max((d.grade for d in damages), default=0), max((d.score for d in damages), default=0.0)


@dataclass(frozen=True, slots=True)
class Sighting:
    damages: tuple[Damage, ...]
    mono_ns: int
    odometer_m: float | None


@dataclass(frozen=True, slots=True)
class MergeRules:
    max_distance_m: float = 12.0
    min_x_overlap: float = 0.1
    max_gap_s: float = 2.0  # used when there is no odometer (no GPS fix)


def same_damage(a: Sighting, b: Sighting, rules: MergeRules) -> bool:
    """Whether ``b`` (the newer) shows a damage seen in ``a`` (the previous sighting)."""
    if a.odometer_m is not None and b.odometer_m is not None:
        if abs(b.odometer_m - a.odometer_m) > rules.max_distance_m:
            return False
    elif (b.mono_ns - a.mono_ns) / 1e9 > rules.max_gap_s:
        return False
    if (b.mono_ns - a.mono_ns) / 1e9 > max(rules.max_gap_s, 10.0):
        return False  # standing long at one place: a new look is a new finding
    shared = any(
        da.type_code == db.type_code and x_overlap(da.box_norm, db.box_norm) >= rules.min_x_overlap
        for da in a.damages
        for db in b.damages
    )
    return shared


def better(new: Sighting, best: Sighting) -> bool:
    return rank(new.damages) > rank(best.damages)


def covers(best: Sighting, new: Sighting) -> bool:
    """Merging keeps one frame: it must show every damage type that either frame showed."""
    keep, drop = (new, best) if better(new, best) else (best, new)
    return {d.type_code for d in drop.damages} <= {d.type_code for d in keep.damages}
