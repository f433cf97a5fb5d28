"""GPS loss and clocks (issue 16): grading outlives the GPS, and findings carry GPS time.

A real recorder (capture, GPS and grading threads, the shipped model, the demo road frames)
fed by a replayed NMEA log that ends mid-shift; the system clock stuck in 2001 is the one
thing simulated, by handing the recorder's clock a system time 25 years behind (a test
cannot set this machine's clock).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge.config.capture import CameraConfig, SamplingConfig
from edge.config.gps import GpsConfig
from edge.config.loader import DEMO_DIR, AppConfig, demo_config
from edge.gps.disciplined import DisciplinedClock
from edge.recording.recorder import Recorder
from edge.status import Alert

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

DEMO_NMEA = DEMO_DIR / "chiba_drive.nmea"
DEMO_DATE = "2024-05-14"  # the demo log's receiver date


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _short_log(tmp_path: Path, epochs: int) -> Path:
    """The first ``epochs`` seconds of the demo drive: a GPS stream that ends."""
    lines, seen = [], 0
    for line in DEMO_NMEA.read_text().splitlines():
        if line.startswith("$GPRMC"):
            seen += 1
            if seen > epochs:
                break
        lines.append(line)
    path = tmp_path / "short.nmea"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tmp_path: Path, nmea: Path, **sampling: Any) -> AppConfig:
    base = demo_config(tmp_path / "data", fast=False)
    return base.model_copy(
        update={
            "camera": CameraConfig(
                source="folder", path=DEMO_DIR / "frames", fps=4.0, loop=True, pace=True
            ),
            "gps": GpsConfig(source="nmea_file", nmea_file=nmea, replay_speed=1.0),
            "sampling": SamplingConfig(**sampling),
        }
    )


def _findings(data_dir: Path) -> list[dict[str, Any]]:
    db = data_dir / "outbox.sqlite3"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [json.loads(p) for (p,) in conn.execute("SELECT payload FROM findings")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_grading_goes_on_by_time_after_the_gps_stream_ends(tmp_path: Path) -> None:
    config = _config(tmp_path, _short_log(tmp_path, 4), fallback_interval_s=0.5)
    recorder = Recorder(config).start()
    try:
        assert _wait(lambda: recorder.driver.gps.ended, 60), "the short log never ended"
        dead_s = config.gps.max_dead_reckoning_s
        assert _wait(lambda: (recorder.status().gps.fix_age_s or 0.0) > dead_s + 1.0, 30)
        after_gps = recorder.status().model.graded
        frames = recorder.status().camera.frames
        # The last fix is stale now: every fallback_interval_s a frame is graded, as if no
        # GPS had ever been there (the old sampler waited for an odometer that never moved).
        assert _wait(lambda: recorder.status().model.graded >= after_gps + 6, 60), (
            recorder.status().model.graded,
            after_gps,
        )
        assert recorder.status().camera.frames > frames
        assert Alert.NO_GPS_FIX in recorder.status().alerts
    finally:
        recorder.stop()


def test_findings_carry_gps_time_when_the_system_clock_is_in_2001(tmp_path: Path) -> None:
    config = _config(tmp_path, DEMO_NMEA)
    recorder = Recorder(config)
    stuck = timedelta(days=25 * 365)
    recorder.utc = DisciplinedClock(recorder.history, system_utc=lambda: datetime.now(UTC) - stuck)
    assert datetime.now(UTC) - stuck < datetime(2002, 1, 1, tzinfo=UTC)
    # Before any fix: no trustworthy UTC, and the screen says so.
    assert Alert.CLOCK_NOT_SET in recorder.status().alerts
    recorder.start()
    try:
        assert _wait(lambda: len(_findings(config.vehicle.data_dir)) >= 3, 90)
        assert Alert.CLOCK_NOT_SET not in recorder.status().alerts
        found = _findings(config.vehicle.data_dir)
        gps_stamped = [f for f in found if f["clock_source"] == "gps"]
        assert gps_stamped, found
        assert all(f["captured_at_utc"].startswith(DEMO_DATE) for f in gps_stamped)
        # Any finding dated before the first fix says it was the unset system clock.
        others = [f for f in found if f["clock_source"] != "gps"]
        assert all(f["clock_source"] == "unset" for f in others), others
        manual_id = recorder.mark_manual()
        assert manual_id is not None
    finally:
        recorder.stop()
    manual = next(f for f in _findings(config.vehicle.data_dir) if f["id"] == manual_id)
    assert manual["clock_source"] == "gps" and manual["captured_at_utc"].startswith(DEMO_DATE)


def test_without_gps_a_2001_system_clock_stamps_unset_and_the_alert_stays(
    tmp_path: Path,
) -> None:
    silent = tmp_path / "nothing.nmea"
    silent.write_text("")
    config = _config(tmp_path, silent)
    recorder = Recorder(config)
    stuck = timedelta(days=25 * 365)
    recorder.utc = DisciplinedClock(recorder.history, system_utc=lambda: datetime.now(UTC) - stuck)
    recorder.start()
    try:
        assert recorder.mark_manual() is not None
        assert _wait(lambda: recorder.status().camera.frames >= 2, 30)
        assert Alert.CLOCK_NOT_SET in recorder.status().alerts
    finally:
        recorder.stop()
    found = _findings(config.vehicle.data_dir)
    assert any(f["origin"] == "manual" for f in found)
    assert {f["clock_source"] for f in found} == {"unset"}
    assert all(f["captured_at_utc"].startswith("2001-") for f in found)
