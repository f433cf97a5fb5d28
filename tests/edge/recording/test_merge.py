"""Repeat sightings: which consecutive sightings become one finding."""

from __future__ import annotations

import pytest

from edge.recording.merge import MergeRules, Sighting, better, covers, same_damage, x_overlap
from edge.types import Damage

RULES = MergeRules(max_distance_m=12.0, min_x_overlap=0.1, max_gap_s=2.0)
S = 1_000_000_000


def _s(*damages: Damage, t_s: float = 0.0, odo: float | None = 0.0) -> Sighting:
    return Sighting(tuple(damages), int(t_s * S), odo)


def crack(x0: float, x1: float, y0: float = 0.2, score: float = 0.6) -> Damage:
    return Damage("D00", score, (x0, y0, x1, y0 + 0.3), 1)


def pothole(x0: float, x1: float, score: float = 0.8) -> Damage:
    return Damage("D40", score, (x0, 0.5, x1, 0.7), 3)


def test_horizontal_overlap() -> None:
    # 0.2 shared of the 0.6 both span together
    assert x_overlap((0.0, 0, 0.4, 1), (0.2, 0, 0.6, 1)) == pytest.approx(1 / 3)
    assert x_overlap((0.0, 0, 0.2, 1), (0.5, 0, 0.7, 1)) == 0.0


def test_same_crack_sliding_down_the_picture_four_metres_on_merges() -> None:
    a = _s(crack(0.40, 0.50, y0=0.1), t_s=0.0, odo=100.0)
    b = _s(crack(0.42, 0.52, y0=0.5), t_s=0.5, odo=104.0)
    assert same_damage(a, b, RULES)


def test_too_far_driven_or_elsewhere_across_the_road_does_not_merge() -> None:
    a = _s(crack(0.40, 0.50), odo=100.0)
    assert not same_damage(a, _s(crack(0.40, 0.50), t_s=1.0, odo=113.0), RULES)
    assert not same_damage(a, _s(crack(0.80, 0.90), t_s=0.5, odo=104.0), RULES)
    # other type at the same place: not the same damage
    assert not same_damage(a, _s(pothole(0.40, 0.50), t_s=0.5, odo=104.0), RULES)


def test_without_gps_time_decides() -> None:
    a = _s(crack(0.40, 0.50), t_s=0.0, odo=None)
    assert same_damage(a, _s(crack(0.40, 0.50), t_s=1.5, odo=None), RULES)
    assert not same_damage(a, _s(crack(0.40, 0.50), t_s=2.5, odo=None), RULES)


def test_best_frame_is_highest_grade_then_score() -> None:
    weak, strong = _s(crack(0.4, 0.5, score=0.5)), _s(crack(0.4, 0.5, score=0.9))
    assert better(strong, weak) and not better(weak, strong)
    assert better(_s(crack(0.4, 0.5), pothole(0.1, 0.2, score=0.35)), strong)


def test_merging_never_hides_a_damage_type() -> None:
    crack_only = _s(crack(0.4, 0.5, score=0.9))
    crack_and_pothole = _s(crack(0.4, 0.5), pothole(0.1, 0.2))
    # the pothole frame is better and shows the crack too: fine to keep only it
    assert covers(crack_only, crack_and_pothole)
    # the better frame would drop the other's alligator crack: keep both findings
    alligator = Damage("D20", 0.3, (0.6, 0.1, 0.9, 0.4), 2)
    assert not covers(_s(crack(0.4, 0.5, score=0.2), alligator), _s(pothole(0.4, 0.5)))
