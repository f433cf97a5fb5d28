"""NMEA log replay, the GPS thread and its status, the [gps] config, and the demo track."""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.gps import (
    EndOfFixes,
    FixSourceError,
    GpsConfig,
    GpsdSource,
    GpsThread,
    NmeaReplaySource,
    SerialNmeaSource,
    history_for,
    open_fix_source,
)
from edge.gps.geo import distance_m
from edge.gps.history import FixHistory
from edge.gps.nmea import parse_sentence
from edge.types import Fix, FixMode

from support.gps import DEMO_TRACK, GPSD_LOGS, REPO, pty, wait_until

CITY_HALL = (35.6073, 140.1063)


def drain(source: NmeaReplaySource, limit_s: float = 30.0) -> list[Fix]:
    fixes: list[Fix] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            fix = source.read(0.5)
        except EndOfFixes:
            return fixes
        if fix is not None:
            fixes.append(fix)
    pytest.fail("replay did not end")


class VirtualClock:
    """Monotonic time that passes only when the replay sleeps: pacing without a stopwatch."""

    def __init__(self) -> None:
        self.now_ns = 1_000_000_000
        self.sleeps: list[float] = []

    def clock(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += int(seconds * 1e9)


def test_replay_keeps_the_receivers_pace_times_the_speed_factor() -> None:
    time_ = VirtualClock()
    source = NmeaReplaySource(DEMO_TRACK, speed=40.0, clock=time_.clock, sleep=time_.sleep)
    fixes = drain(source)  # 1 s of receiver time -> 25 ms
    assert len(fixes) == 75
    gaps_ms = [(b.mono_ns - a.mono_ns) / 1e6 for a, b in itertools.pairwise(fixes)]
    assert gaps_ms == pytest.approx([25.0] * 74, abs=0.01)


@pytest.mark.slow
def test_replay_at_pace_takes_at_least_the_logs_time_on_the_real_clock() -> None:
    # Only a lower bound: a busy machine makes the replay later, never earlier.
    source = NmeaReplaySource(DEMO_TRACK, speed=40.0)
    started = time.monotonic_ns()
    fixes = drain(source)
    assert len(fixes) == 75
    assert (time.monotonic_ns() - started) / 1e9 >= 74 / 40 * 0.95
    assert all(started <= f.mono_ns <= time.monotonic_ns() for f in fixes)


def test_replay_speed_zero_never_waits() -> None:
    time_ = VirtualClock()
    source = NmeaReplaySource(DEMO_TRACK, speed=0, clock=time_.clock, sleep=time_.sleep)
    fixes = [source.read(0.0) for _ in range(75)]  # no fix is ever "not yet due"
    assert all(fix is not None for fix in fixes)
    assert time_.sleeps == []


def test_replay_read_returns_none_while_the_next_epoch_is_not_due() -> None:
    time_ = VirtualClock()
    source = NmeaReplaySource(DEMO_TRACK, speed=1.0, clock=time_.clock, sleep=time_.sleep)
    assert source.read(0.01) is not None
    assert source.read(0.05) is None  # the next one is due a second later
    assert sum(time_.sleeps) == pytest.approx(0.05)  # it waited its timeout, no longer
    time_.sleep(1.0)
    assert source.read(0.05) is not None


def test_replay_can_loop_with_advancing_time() -> None:
    source = NmeaReplaySource(DEMO_TRACK, speed=0, loop=True)
    fixes = [source.read(0.1) for _ in range(160)]
    times = [f.time_utc for f in fixes if f is not None]
    assert len(times) == 160 and times == sorted(times) and len(set(times)) == 160


def _no_rtc() -> datetime:
    """This machine's clock on a board without a real-time clock, before NTP: 1970."""
    return datetime(1970, 1, 1, 0, 2, tzinfo=UTC)


def test_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nmea"
    with pytest.raises(FixSourceError, match=r"nope\.nmea"):
        NmeaReplaySource(missing)


@pytest.mark.slow
def test_thread_fills_history_and_reports_status() -> None:
    source = NmeaReplaySource(DEMO_TRACK, speed=20.0)
    history = FixHistory()
    seen: list[Fix] = []
    gps = GpsThread(source, history, on_fix=seen.append, wall_clock=_no_rtc)
    assert gps.status().mode == 0 and gps.status().fix_age_s is None
    assert gps.status().clock_set is False  # no receiver time yet, no system time either
    gps.start()
    try:
        wait_until(lambda: gps.fixes_received >= 5, 10, "five fixes")
        status = gps.status()
        assert status.mode == int(FixMode.FIX_3D) and status.quality == "gps"
        assert status.sats_used == 9 and status.hdop == 0.9
        assert status.lat_deg is not None and status.lon_deg is not None
        assert distance_m(*CITY_HALL, status.lat_deg, status.lon_deg) < 700
        # A fresh fix (one comes every 50 ms); the bound only has to tell it from a stale one.
        assert status.fix_age_s is not None and 0 <= status.fix_age_s < 5.0
        assert status.clock_set and status.error is None and status.bad_sentences == 0
        frame_time = time.monotonic_ns()
        assert history.position_at(frame_time) is not None
        wait_until(lambda: gps.ended, 15, "end of replay")
        assert "finished" in (gps.status().error or "")
        assert len(seen) == 75 and len(history) == 75
    finally:
        gps.stop()
    assert not gps.is_alive()


def test_clock_not_set_for_a_receiver_date_before_2020() -> None:
    gps = GpsThread(
        NmeaReplaySource(GPSD_LOGS / "bu353s4.log", speed=0), FixHistory(), wall_clock=_no_rtc
    )
    gps.start()
    try:
        wait_until(lambda: gps.ended, 10, "end of replay")
        status = gps.status()
    finally:
        gps.stop()
    assert status.mode == 3 and status.clock_set is False  # it says 2014, and so does no one
    # The same receiver on a machine whose own clock is plausible: UTC is known from that.
    gps = GpsThread(NmeaReplaySource(GPSD_LOGS / "bu353s4.log", speed=0), FixHistory())
    gps.start()
    try:
        wait_until(lambda: gps.ended, 10, "end of replay")
        assert gps.status().clock_set
    finally:
        gps.stop()


def test_thread_status_shows_a_missing_device(tmp_path: Path) -> None:
    device = tmp_path / "ttyGPS"
    gps = GpsThread(SerialNmeaSource(str(device), 9600, backoff_initial_s=0.05), FixHistory())
    gps.start()
    try:
        wait_until(lambda: gps.status().error is not None, 5, "an error")
        status = gps.status()
    finally:
        gps.stop()
    assert str(device) in (status.error or "")
    assert status.mode == 0 and status.fix_age_s is None


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="serial_prot"):
        GpsConfig.model_validate({"serial_prot": "/dev/ttyUSB0"})
    with pytest.raises(ValidationError, match="baud"):
        GpsConfig(baud=300)
    with pytest.raises(ValidationError, match="nmea_file"):
        GpsConfig(source="nmea_file")
    with pytest.raises(ValidationError, match="replay_speed"):
        GpsConfig(replay_speed=-1)


def test_every_config_field_is_documented_and_has_a_default() -> None:
    defaults = GpsConfig()
    for name, field in GpsConfig.model_fields.items():
        assert field.description, name
        assert not field.is_required(), name
    assert defaults.baud == 9600 and defaults.max_dead_reckoning_s == 2.0


def test_factory_picks_the_configured_source(tmp_path: Path) -> None:
    assert isinstance(open_fix_source(GpsConfig(source="serial")), SerialNmeaSource)
    assert isinstance(open_fix_source(GpsConfig(source="gpsd", gpsd_port=1)), GpsdSource)
    replay = open_fix_source(GpsConfig(source="nmea_file", nmea_file=DEMO_TRACK))
    assert isinstance(replay, NmeaReplaySource) and len(replay) == 75
    history = history_for(GpsConfig(max_dead_reckoning_s=0.5))
    history.add(drain(NmeaReplaySource(DEMO_TRACK, speed=0))[0])
    assert history.position_at(history.latest().mono_ns + 600_000_000) is None  # type: ignore[union-attr]


def test_demo_track_is_a_plausible_drive_near_chiba_city_hall() -> None:
    lines = DEMO_TRACK.read_text(encoding="ascii").splitlines()
    sentences = [parse_sentence(line) for line in lines if not line.startswith("#")]
    assert {s.kind for s in sentences} == {"RMC", "GGA", "GSA"}
    assert any(line.startswith("# Date: ") for line in lines)
    fixes = drain(NmeaReplaySource(DEMO_TRACK, speed=0))
    assert len(fixes) == 75 and all(f.mode == FixMode.FIX_3D for f in fixes)
    times = [f.time_utc for f in fixes]
    assert all(t is not None for t in times)
    assert all((b - a).total_seconds() == 1.0 for a, b in itertools.pairwise(times))  # type: ignore[operator]
    assert distance_m(*CITY_HALL, fixes[0].lat_deg, fixes[0].lon_deg) < 50  # type: ignore[arg-type]
    speeds = [f.speed_mps for f in fixes if f.speed_mps is not None]
    assert 7.0 <= statistics.mean(speeds) <= 9.0 and max(speeds) <= 8.4  # about 30 km/h
    steps = [
        distance_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)  # type: ignore[arg-type]
        for a, b in itertools.pairwise(fixes)
    ]
    assert all(3.0 < step < 9.0 for step in steps)  # speed and positions agree
    courses = sorted({round(f.track_deg / 10) * 10 % 360 for f in fixes if f.track_deg is not None})
    assert {40, 130, 220} <= set(courses)  # two right-angle turns


def test_demo_track_file_is_what_the_generator_makes(tmp_path: Path) -> None:
    out = tmp_path / "track.nmea"
    subprocess.run(
        [sys.executable, "-m", "edge.demo.make_track", "--out", str(out)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    assert out.read_bytes() == DEMO_TRACK.read_bytes()


@pytest.mark.slow
def test_thread_survives_a_source_that_raises() -> None:
    class Flaky:
        name = "flaky"
        calls = 0

        def read(self, timeout_s: float) -> Fix | None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("driver bug")
            time.sleep(0.01)
            return None

        def stats(self):  # type: ignore[no-untyped-def]
            return NmeaReplaySource(DEMO_TRACK).stats()

        def close(self) -> None:
            pass

    flaky = Flaky()
    gps = GpsThread(flaky, FixHistory())  # type: ignore[arg-type]
    gps.start()
    try:
        wait_until(lambda: flaky.calls >= 2, 5, "a retry after the crash")
        assert gps.is_alive()
        assert "driver bug" in (gps.status().error or "")
    finally:
        gps.stop()


def test_serial_pty_through_thread_gives_positions() -> None:
    with pty() as port:
        source = SerialNmeaSource(port.path, 9600, idle_flush_s=0.05)
        history = FixHistory()
        gps = GpsThread(source, history)
        gps.start()
        try:
            wait_until(lambda: source.stats().connected, 5, "port open")
            payload = DEMO_TRACK.read_bytes().split(b"\r\n", 4)[4]  # sentences only
            port.write_in_background(payload, pause_s=0.01, chunk=230)
            wait_until(lambda: gps.fixes_received >= 10, 10, "ten fixes")
            assert history.position_at(time.monotonic_ns()) is not None
        finally:
            gps.stop()
