"""Geotag benchmarks: error at 60 km/h with 1 Hz fixes, and the cost of FixHistory.position_at.

nice -n 10 python -m pytest tests/bench/test_bench_geotag.py -s --benchmark-columns=mean,stddev
"""

from __future__ import annotations

import statistics
import sys
import timeit
from bisect import bisect_left
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared fixtures

from edge.gps.history import FixHistory
from edge.types import Fix

from support.gps import NS, curvy_drive, decimated_fixes, geotag_errors, percentile

SPEED_MPS = 60 / 3.6


def _summary(name: str, errors: list[float]) -> str:
    return (
        f"{name:<28} median {statistics.median(errors):5.2f} m  "
        f"p95 {percentile(errors, 0.95):5.2f} m  max {max(errors):5.2f} m"
    )


def test_geotag_error_60_kmh_1_hz(benchmark) -> None:  # type: ignore[no-untyped-def]
    truth = curvy_drive(SPEED_MPS, hz=10)
    fixes = decimated_fixes(truth, SPEED_MPS, every=10)
    # Timed: geotagging every 10 Hz frame of the drive (and the nearest-fix baseline beside it).
    errors = benchmark.pedantic(geotag_errors, args=(truth, fixes), rounds=3, iterations=1)
    # Same fixes without speed/course: the straight-chord interpolation a plain receiver allows.
    bare = [replace(f, speed_mps=None, track_deg=None) for f in fixes]
    linear = geotag_errors(truth, bare).interpolated_m
    hermite, nearest = errors.interpolated_m, errors.nearest_fix_m
    print()
    print(f"geotag error, 60 km/h, 1 Hz fixes, {len(hermite)} frames at 10 Hz through bends:")
    print(_summary("interpolated (speed+course)", hermite))
    print(_summary("interpolated (chord only)", linear))
    print(_summary("nearest fix (baseline)", nearest))
    ratio = statistics.median(nearest) / statistics.median(hermite)
    print(f"nearest-fix median / interpolated median = {ratio:.0f}x")
    benchmark.extra_info.update(
        median_m=statistics.median(hermite),
        p95_m=percentile(hermite, 0.95),
        chord_median_m=statistics.median(linear),
        nearest_median_m=statistics.median(nearest),
        nearest_p95_m=percentile(nearest, 0.95),
    )
    assert statistics.median(hermite) <= 1.0
    assert statistics.median(hermite) < statistics.median(nearest)
    assert statistics.median(linear) < statistics.median(nearest)


def test_position_at_cost(benchmark) -> None:  # type: ignore[no-untyped-def]
    truth = curvy_drive(SPEED_MPS, hz=10)
    fixes = decimated_fixes(truth, SPEED_MPS, every=10)
    history = FixHistory(capacity=len(fixes))
    for fix in fixes:
        history.add(fix)
    span = fixes[-1].mono_ns - fixes[0].mono_ns
    queries = [fixes[0].mono_ns + span * k // 1000 + 37 * NS // 1000 for k in range(1000)]
    monos = [f.mono_ns for f in fixes]

    def nearest_fix(t: int) -> Fix:
        """Baseline: the cheapest possible geotag (nearest fix by bisection), no interpolation."""
        i = bisect_left(monos, t)
        if i == 0:
            return fixes[0]
        if i == len(fixes):
            return fixes[-1]
        return fixes[i] if fixes[i].mono_ns - t < t - fixes[i - 1].mono_ns else fixes[i - 1]

    def interpolate_all() -> None:
        for t in queries:
            history.position_at(t)

    benchmark(interpolate_all)
    per_call_us = benchmark.stats.stats.mean / len(queries) * 1e6
    baseline_s = min(timeit.repeat(lambda: [nearest_fix(t) for t in queries], number=1, repeat=20))
    baseline_us = baseline_s / len(queries) * 1e6
    print()
    print(
        f"position_at: {per_call_us:.2f} µs per call over {len(fixes)} fixes; "
        f"nearest-fix lookup {baseline_us:.2f} µs; ratio {per_call_us / baseline_us:.1f}x"
    )
    benchmark.extra_info.update(per_call_us=per_call_us, baseline_us=baseline_us)
    # A frame costs milliseconds to grade; geotagging it must stay far below that.
    assert per_call_us < 200
