"""The recorder end to end on the bundled demo drive: real frames, real NMEA, the shipped model."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import piexif
import pytest

from edge.config.loader import ModelConfig, demo_config
from edge.recording.findings import MANUAL_GRADE
from edge.recording.recorder import Recorder
from edge.status import Alert
from edge.types import FindingOrigin
from edge.wire.serialize import finding_from_dict

from support import REPO

pytestmark = pytest.mark.slow  # the tests share a replayed drive that takes ~10 s


def _findings(data_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    with sqlite3.connect(data_dir / "outbox.sqlite3") as conn:
        return [
            {
                "row": dict(zip(("id", "grade", "image_name"), r[:3], strict=True)),
                "finding": json.loads(r[3]),
            }
            for r in conn.execute("SELECT id, grade, image_name, payload FROM findings")
        ]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    data_dir = tmp_path_factory.mktemp("demo")
    recorder = Recorder(demo_config(data_dir, fast=True), lockstep=True).start()
    assert recorder.wait_ended(timeout_s=300)
    status = recorder.status()
    stats = recorder.outbox.stats()
    recorder.stop()
    return data_dir, {"status": status, "stats": stats}


def test_every_frame_of_the_replay_is_seen_and_findings_land_in_the_outbox(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, result = demo_run
    status = result["status"]
    frames = sorted(
        (REPO / "edge" / "demo" / "frames").glob("*.jpg")
    )
    assert status.camera.frames == len(frames) == 120
    assert 0 < status.model.graded <= len(frames)
    rows = _findings(data_dir)
    by_grade = status.findings_by_grade
    assert sum(by_grade[g] for g in "123") == len(rows) == result["stats"].stored > 0


def test_stored_findings_are_graded_by_their_damages_and_geotagged_on_the_track(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, _ = demo_run
    for item in _findings(data_dir):
        finding = finding_from_dict(item["finding"])
        assert finding.grade == item["row"]["grade"] == max(d.grade for d in finding.damages)
        assert finding.origin == FindingOrigin.MODEL
        assert finding.model_id
        # The demo track runs a few hundred metres around Chiba City Hall (35.6073 N 140.1063 E).
        assert finding.position is not None
        assert abs(finding.position.lat_deg - 35.6073) < 0.01
        assert abs(finding.position.lon_deg - 140.1063) < 0.01
        assert finding.position.fix_age_s <= 1.0


def test_images_carry_the_finding_position_in_exif(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, _ = demo_run
    item = _findings(data_dir)[0]
    finding = finding_from_dict(item["finding"])
    exif = piexif.load(str(data_dir / "images" / item["row"]["image_name"]))
    gps = exif["GPS"]

    def deg(v: tuple) -> float:  # type: ignore[type-arg]
        return sum(n / d / 60**i for i, (n, d) in enumerate(v))

    assert finding.position is not None
    assert deg(gps[piexif.GPSIFD.GPSLatitude]) == pytest.approx(finding.position.lat_deg, abs=1e-5)
    assert deg(gps[piexif.GPSIFD.GPSLongitude]) == pytest.approx(finding.position.lon_deg, abs=1e-5)


def test_repeat_sightings_merge_into_fewer_findings_than_damaged_frames(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, result = demo_run
    rows = [finding_from_dict(i["finding"]) for i in _findings(data_dir)]
    sightings = sum(f.sightings for f in rows)
    damaged_frames = result["status"].model.graded - result["status"].findings_by_grade["0"]
    assert sightings == damaged_frames
    assert any(f.sightings > 1 for f in rows)
    # seq numbers are unique and increasing per recorder start
    seqs = sorted(f.seq for f in rows)
    assert len(set(seqs)) == len(seqs)


def test_manual_mark_pause_and_resume(tmp_path: Path) -> None:
    config = demo_config(tmp_path, fast=False)
    recorder = Recorder(config)
    recorder.set_paused(True)  # before the first frame: e.g. started in a car park
    recorder.start()
    try:
        assert recorder.status().model.paused
        import time

        deadline = time.monotonic() + 20
        while recorder.status().camera.frames < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recorder.status().camera.frames >= 3
        assert recorder.status().model.graded == 0  # paused: frames arrive, nothing is graded
        finding_id = recorder.mark_manual()
        assert finding_id is not None
        assert recorder.images.wait_idle(30)  # its image follows once anonymised
        row = next(i for i in _findings(tmp_path) if i["row"]["id"] == finding_id)
        manual = finding_from_dict(row["finding"])
        assert manual.origin == FindingOrigin.MANUAL and manual.grade == MANUAL_GRADE
        assert row["row"]["image_name"]  # the current frame is stored with it
        assert recorder.status().findings_by_grade["manual"] == 1
        recorder.set_paused(False)
        deadline = time.monotonic() + 30
        while recorder.status().model.graded == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recorder.status().model.graded > 0
    finally:
        recorder.stop()


def test_a_refused_model_keeps_the_vehicle_recording(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "half-written')
    config = demo_config(tmp_path / "data", fast=True)
    config = config.model_copy(update={"model": ModelConfig(package=broken)})
    recorder = Recorder(config, lockstep=True).start()
    try:
        assert recorder.wait_ended(timeout_s=60)
        status = recorder.status()
        assert Alert.MODEL_REFUSED in status.alerts
        assert "broken.json" in (status.model.error or "")
        assert status.camera.frames == 120 and status.model.graded == 0
        assert recorder.mark_manual() is not None  # the crew can still report damage
    finally:
        recorder.stop()
