"""DistanceSampler: grade every few metres, nothing while standing, a timer without GPS."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from edge.capture import DistanceSampler, SamplingConfig

NS = 1_000_000_000


def test_grades_one_frame_every_sample_distance_from_the_odometer() -> None:
    sampler = DistanceSampler(SamplingConfig(sample_every_m=4.0))
    # 10 fps at 10 m/s: one metre per frame.
    graded = [
        k
        for k in range(100)
        if sampler.should_grade(k * NS // 10, odometer_m=float(k), speed_mps=10.0)
    ]
    assert graded == list(range(0, 100, 4))


def test_integrates_speed_when_there_is_no_odometer() -> None:
    sampler = DistanceSampler(SamplingConfig(sample_every_m=4.0))
    graded = [k for k in range(40) if sampler.should_grade(k * NS // 10, None, speed_mps=10.0)]
    assert graded == list(range(0, 40, 4))


def test_nothing_is_graded_while_standing_still() -> None:
    sampler = DistanceSampler(SamplingConfig(min_speed_mps=0.5))
    assert sampler.should_grade(0, odometer_m=100.0, speed_mps=12.0)
    standing = [sampler.should_grade(k * NS, odometer_m=104.0, speed_mps=0.2) for k in range(1, 60)]
    assert not any(standing)  # a minute at a red light: no frames, even past the time fallback
    # Driving off again grades as soon as the distance is covered.
    assert sampler.should_grade(61 * NS, odometer_m=104.5, speed_mps=3.0)


def test_falls_back_to_a_time_interval_without_a_fix() -> None:
    sampler = DistanceSampler(SamplingConfig(fallback_interval_s=0.5))
    graded = [k for k in range(30) if sampler.should_grade(k * NS // 10, None, None)]
    assert graded == [0, 5, 10, 15, 20, 25]


def test_fix_lost_then_regained() -> None:
    sampler = DistanceSampler(SamplingConfig(sample_every_m=4.0, fallback_interval_s=1.0))
    assert sampler.should_grade(0, 10.0, 10.0)
    assert not sampler.should_grade(NS // 10, 11.0, 10.0)
    # Fix lost: the timer runs from the last graded frame.
    assert not sampler.should_grade(5 * NS // 10, None, None)
    assert sampler.should_grade(NS, None, None)
    assert not sampler.should_grade(15 * NS // 10, None, None)
    # Fix back, 30 m further on: grade at once, then every 4 m again.
    assert sampler.should_grade(2 * NS, 40.0, 10.0)
    assert not sampler.should_grade(21 * NS // 10, 43.0, 10.0)
    assert sampler.should_grade(22 * NS // 10, 44.0, 10.0)


def test_odometer_restart_begins_again() -> None:
    sampler = DistanceSampler()
    assert sampler.should_grade(0, 5000.0, 10.0)
    assert sampler.should_grade(NS, 0.0, 10.0)  # new GPS source: odometer back to zero
    assert not sampler.should_grade(2 * NS, 1.0, 10.0)


@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=300))
def test_graded_frames_are_spaced_by_the_sample_distance(steps: list[float]) -> None:
    cfg = SamplingConfig(sample_every_m=4.0)
    sampler = DistanceSampler(cfg)
    odometer = 0.0
    graded_at: list[float] = []
    for k, step in enumerate(steps):
        odometer += step
        if sampler.should_grade(k * NS // 10, odometer, speed_mps=5.0):
            graded_at.append(odometer)
    assert graded_at, "the first moving frame is always graded"
    spacing = [b - a for a, b in itertools.pairwise(graded_at)]
    assert all(s >= cfg.sample_every_m for s in spacing)
    # Never more than one frame step beyond the sample distance without grading.
    assert odometer - graded_at[-1] < cfg.sample_every_m + max(steps) + 1e-9
    assert all(s < cfg.sample_every_m + max(steps) + 1e-9 for s in spacing)
