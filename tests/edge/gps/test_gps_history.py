"""FixHistory: interpolation, bounded dead reckoning, ungeotagged frames, the odometer, and
geotag accuracy against a known track."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from edge.gps.geo import destination, distance_m
from edge.gps.history import FixHistory
from edge.types import Fix, FixMode, FixQuality, PositionSource

from support.gps import NS, curvy_drive, decimated_fixes, geotag_errors, percentile

LAT, LON = 35.6073, 140.1063


def fix(
    t_s: float,
    lat: float = LAT,
    lon: float = LON,
    *,
    speed: float | None = None,
    track: float | None = None,
    mode: FixMode = FixMode.FIX_3D,
    hdop: float | None = 1.0,
    time_utc: datetime | None = None,
) -> Fix:
    return Fix(
        mono_ns=round(t_s * NS),
        time_utc=time_utc,
        lat_deg=lat if mode >= FixMode.FIX_2D else None,
        lon_deg=lon if mode >= FixMode.FIX_2D else None,
        mode=mode,
        quality=FixQuality.DGPS,
        speed_mps=speed,
        track_deg=track,
        hdop=hdop,
        sats_used=9,
    )


def straight_east(count: int, speed: float = 10.0) -> list[Fix]:
    return [
        fix(t, *destination(LAT, LON, 90.0, speed * t), speed=speed, track=90.0)
        for t in range(count)
    ]


def test_between_two_fixes_the_position_is_interpolated_not_the_nearest() -> None:
    a_lat, a_lon = LAT, LON
    b_lat, b_lon = destination(LAT, LON, 30.0, 16.0)
    history = FixHistory()
    history.add(fix(10.0, a_lat, a_lon, hdop=0.8))  # no speed/course: straight line
    history.add(fix(11.0, b_lat, b_lon, hdop=1.4))
    position = history.position_at(round(10.25 * NS))
    assert position is not None
    assert position.source == PositionSource.INTERPOLATED
    assert distance_m(a_lat, a_lon, position.lat_deg, position.lon_deg) == pytest.approx(
        4.0, abs=0.01
    )
    assert distance_m(b_lat, b_lon, position.lat_deg, position.lon_deg) == pytest.approx(
        12.0, abs=0.01
    )
    assert position.fix_age_s == pytest.approx(0.25)
    assert position.hdop == 1.4  # the worse of the two
    assert position.fix_quality == FixQuality.DGPS and position.fix_mode == FixMode.FIX_3D


def test_newer_than_the_last_fix_is_dead_reckoned_for_a_bounded_time() -> None:
    history = FixHistory(max_dead_reckoning_s=2.0)
    for f in straight_east(3):
        history.add(f)
    last_lat, last_lon = destination(LAT, LON, 90.0, 20.0)
    ahead = history.position_at(round(3.5 * NS))  # 1.5 s after the last fix
    assert ahead is not None and ahead.source == PositionSource.DEAD_RECKONING
    assert distance_m(last_lat, last_lon, ahead.lat_deg, ahead.lon_deg) == pytest.approx(
        15.0, abs=0.01
    )
    assert ahead.lon_deg > last_lon and ahead.fix_age_s == pytest.approx(1.5)
    assert history.position_at(round(4.01 * NS)) is None  # 2.01 s: ungeotagged


def test_before_the_first_fix_and_with_no_fixes_there_is_no_position() -> None:
    history = FixHistory(max_dead_reckoning_s=1.0)
    assert history.position_at(5 * NS) is None
    history.add(fix(10.0, speed=5.0, track=0.0))
    assert history.position_at(8 * NS) is None
    just_before = history.position_at(round(9.5 * NS))
    assert just_before is not None and just_before.lat_deg < LAT  # projected backwards


def test_without_speed_and_course_the_nearest_fix_is_used_briefly() -> None:
    history = FixHistory(max_dead_reckoning_s=2.0)
    history.add(fix(1.0))
    position = history.position_at(round(2.5 * NS))
    assert position is not None and position.source == PositionSource.NEAREST_FIX
    assert (position.lat_deg, position.lon_deg) == (LAT, LON)


def test_a_long_gap_is_not_bridged() -> None:
    history = FixHistory(max_dead_reckoning_s=2.0, max_interpolation_gap_s=5.0)
    history.add(fix(0.0, speed=10.0, track=90.0))
    history.add(fix(10.0, *destination(LAT, LON, 90.0, 100.0), speed=10.0, track=90.0))
    assert history.position_at(5 * NS) is None  # a tunnel: no guess in the middle
    near_start = history.position_at(1 * NS)
    assert near_start is not None and near_start.source == PositionSource.DEAD_RECKONING
    near_end = history.position_at(9 * NS)
    assert near_end is not None and near_end.source == PositionSource.DEAD_RECKONING


def test_epochs_without_a_position_are_not_interpolated_through() -> None:
    history = FixHistory()
    history.add(fix(0.0))
    history.add(fix(1.0, mode=FixMode.NO_FIX))
    latest = history.latest()
    assert latest is not None and latest.mode == FixMode.NO_FIX
    with_position = history.latest_with_position()
    assert with_position is not None and with_position.mono_ns == 0
    assert len(history) == 1


def test_the_same_epoch_reported_twice_is_one_sample_kept_at_first_arrival() -> None:
    stamp = datetime(2024, 5, 14, 1, 0, tzinfo=UTC)
    history = FixHistory()
    history.add(fix(1.0, mode=FixMode.FIX_2D, time_utc=stamp))
    history.add(fix(1.2, LAT + 1e-5, LON, time_utc=stamp))  # gpsd's refined report
    history.add(fix(2.0, LAT + 2e-5, LON, time_utc=stamp + timedelta(seconds=1)))
    assert len(history) == 2
    position = history.position_at(1 * NS)
    assert position is not None and position.lat_deg == LAT + 1e-5
    assert position.fix_mode == FixMode.FIX_3D


def test_out_of_order_fixes_are_dropped_and_counted() -> None:
    history = FixHistory()
    history.add(fix(2.0))
    history.add(fix(1.0, LAT + 1e-3, LON))
    assert len(history) == 1 and history.out_of_order == 1


def test_ring_is_bounded() -> None:
    history = FixHistory(capacity=100)
    for f in straight_east(1000):
        history.add(f)
    assert 100 <= len(history) <= 125
    assert history.position_at(10 * NS) is None  # long forgotten
    assert history.position_at(round(998.5 * NS)) is not None


def test_odometer_counts_metres_driven_and_not_standing_jitter() -> None:
    history = FixHistory(standstill_speed_mps=0.5)
    for f in straight_east(11):  # 100 m in 10 s
        history.add(f)
    assert history.odometer_m_at(10 * NS) == pytest.approx(100.0, abs=0.05)
    assert history.odometer_m_at(round(4.5 * NS)) == pytest.approx(45.0, abs=0.05)
    assert history.odometer_m_at(round(10.5 * NS)) == pytest.approx(105.0, abs=0.05)
    parked_lat, parked_lon = destination(LAT, LON, 90.0, 100.0)
    for i, t in enumerate(range(11, 71)):  # a minute parked, position wandering by a metre
        jitter_lat, jitter_lon = destination(parked_lat, parked_lon, (i * 97) % 360, 1.0)
        history.add(fix(t, jitter_lat, jitter_lon, speed=0.1, track=0.0))
    assert history.odometer_m_at(70 * NS) == pytest.approx(
        history.odometer_m_at(10 * NS) + 1.0, abs=1.0
    )


def test_geotag_error_at_60_kmh_with_1_hz_fixes_beats_the_nearest_fix() -> None:
    """A 10 Hz ground-truth drive through bends at 60 km/h, fixes kept at 1 Hz (with receiver
    noise on speed and course), a frame every 0.1 s."""
    speed = 60 / 3.6
    truth = curvy_drive(speed, hz=10)
    errors = geotag_errors(truth, decimated_fixes(truth, speed, every=10))
    interp, nearest = errors.interpolated_m, errors.nearest_fix_m
    assert len(interp) > 600
    interp_median, nearest_median = statistics.median(interp), statistics.median(nearest)
    print(
        f"\ngeotag error at 60 km/h, 1 Hz fixes: interpolated median {interp_median:.2f} m "
        f"p95 {percentile(interp, 0.95):.2f} m; nearest fix median {nearest_median:.2f} m "
        f"p95 {percentile(nearest, 0.95):.2f} m"
    )
    assert interp_median <= 1.0
    assert interp_median < nearest_median
    assert percentile(interp, 0.95) < percentile(nearest, 0.95)
