"""Faces and plates are blurred before a finding's image is stored: the real detectors
(YuNet, PP-OCRv6) on real photos whose plates and face were boxed by hand, the real outbox,
the real recorder."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config.loader import AppConfig, VehicleConfig
from edge.config.privacy import PrivacyConfig
from edge.outbox import Outbox
from edge.outbox.exif_finding import finding_from_jpeg
from edge.privacy.anonymise import Anonymiser, read_note
from edge.privacy.stage import PrivacyStage
from edge.recording.recorder import Recorder
from edge.status import Alert
from edge.types import Damage, Frame, GradedFrame
from edge.wire.validate import schema_errors
from sync.payloads import image_user_properties

from support.outbox import make_finding
from support.privacy import frames, mean_abs_diff, outside, sharpness

JPEG_NOISE = 3.0  # mean |difference| of a quality-85 re-encode away from any blurred box


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "data", image_cap_bytes=50_000_000, min_free_bytes=0)


def _stored(outbox: Outbox, finding_id: str) -> bytes:
    with sqlite3.connect(outbox.db_path) as conn:
        (name,) = conn.execute(
            "SELECT image_name FROM findings WHERE id = ?", (finding_id,)
        ).fetchone()
    assert name is not None, f"finding {finding_id} has no image"
    return (outbox.images_dir / name).read_bytes()


@pytest.fixture(scope="module")
def anonymiser() -> Anonymiser:
    return Anonymiser(PrivacyConfig())


@pytest.mark.slow
@pytest.mark.parametrize("path,boxes", frames(), ids=lambda v: getattr(v, "name", ""))
def test_hand_boxed_plates_and_faces_are_blurred_in_the_stored_jpeg_the_rest_is_jpeg_noise(
    tmp_path: Path, anonymiser: Anonymiser, path: Path, boxes: list
) -> None:
    raw = cv2.imread(str(path))
    outbox = _outbox(tmp_path)
    stage = PrivacyStage(PrivacyConfig(), outbox, jpeg_quality=85).start()
    finding = make_finding(2)
    outbox.add(finding, None)
    stage.submit(finding, raw)
    assert stage.wait_idle(60)
    stored_bytes = _stored(outbox, finding.id)
    stored = cv2.imdecode(np.frombuffer(stored_bytes, np.uint8), cv2.IMREAD_COLOR)
    for box in boxes:
        # Readable characters have a strong Laplacian; a blurred plate keeps almost none.
        assert sharpness(stored, box) < 0.1 * sharpness(raw, box), box
    found = anonymiser.anonymise(raw).regions
    blurred = [(r.x0_px, r.y0_px, r.x1_px, r.y1_px) for r in found]
    away = outside(raw.shape, blurred, pad=24)
    assert away.mean() > 0.8
    assert mean_abs_diff(stored, raw, away) < JPEG_NOISE
    note = read_note(stored_bytes)
    assert note is not None and note["anonymised"] is True and note["regions"] >= len(boxes)
    assert "PP-OCRv6_det_small" in str(note["by"]) and "rapidocr" in str(note["by"])
    assert "YuNet" in str(note["by"]) and "yuface" in str(note["by"])
    # The note sits beside the record: the picture alone still rebuilds its finding.
    rebuilt = finding_from_jpeg(stored_bytes, "v1")
    assert (rebuilt.id, rebuilt.grade, rebuilt.seq) == (finding.id, finding.grade, finding.seq)
    # The office payload carries it: MQTT 5 user properties of the image, schema v2.
    props = image_user_properties(
        {"id": finding.id, "vehicle_id": "v1", "boot_id": finding.boot_id, "seq": 1}, note
    )
    assert props["anonymised"] == "true" and "PP-OCRv6" in props["anonymiser"]
    assert schema_errors("image", props) == []
    stage.close()
    outbox.close()


@pytest.mark.slow
def test_a_stalled_anonymiser_never_delays_the_record_and_drops_the_lowest_grade_image(
    tmp_path: Path,
) -> None:
    (path, boxes), _ = frames("plate")
    raw = cv2.imread(str(path))
    outbox = _outbox(tmp_path)
    stage = PrivacyStage(PrivacyConfig(queue_size=2), outbox, jpeg_quality=85)  # not started
    findings = [make_finding(g, seq=i) for i, g in enumerate((3, 1, 2))]
    for finding in findings:
        outbox.add(finding, None)
        stage.submit(finding, raw)  # returns at once although nothing anonymises yet
    assert outbox.summary().pending == 3  # every record is stored
    assert not any(outbox.images_dir.iterdir())  # and no image, raw or not, before its turn
    assert stage.status().withheld == 1
    stage.start()
    assert stage.wait_idle(60)
    with sqlite3.connect(outbox.db_path) as conn:
        names = dict(conn.execute("SELECT grade, image_name FROM findings").fetchall())
    assert names[1] is None and names[2] and names[3]  # the grade-1 image was the one dropped
    for grade in (2, 3):
        stored = cv2.imread(str(outbox.images_dir / names[grade]))
        assert sharpness(stored, boxes[0]) < 0.1 * sharpness(raw, boxes[0])
    stage.close()
    outbox.close()


def _recorder(tmp_path: Path, privacy: PrivacyConfig) -> Recorder:
    config = AppConfig(vehicle=VehicleConfig(data_dir=tmp_path / "data"), privacy=privacy)
    return Recorder(config)


def _graded(image: np.ndarray, seq: int) -> GradedFrame:
    from datetime import UTC, datetime

    frame = Frame(seq=seq, mono_ns=seq * 10**9, captured_at_utc=datetime.now(UTC), image=image)
    damage = Damage("D40", 0.9, (0.1, 0.6, 0.3, 0.8), 3)
    return GradedFrame(frame, (damage,), 3, "road-damage-1.1.0", 5.0)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_a_broken_detector_model_keeps_recording_findings_stores_no_image_and_says_why(
    tmp_path: Path, problem: str
) -> None:
    model = tmp_path / "det.onnx"
    if problem == "corrupt":
        model.write_bytes(b"\x08\x07not an onnx model" * 100)
    recorder = _recorder(tmp_path, PrivacyConfig(plate_model=model))
    raw = cv2.imread(str(frames("plate")[0][0]))
    try:
        for seq in range(3):
            recorder.record(_graded(raw, seq * 100))  # far apart: three findings
        status = recorder.status()
    finally:
        recorder.stop()
    assert Alert.PRIVACY_FAILED in status.alerts
    assert status.privacy.error is not None and str(model) in status.privacy.error
    assert status.privacy.withheld == 3 and status.privacy.stored == 0
    assert sum(status.findings_by_grade[g] for g in "123") == 3
    data = tmp_path / "data"
    with sqlite3.connect(data / "outbox.sqlite3") as conn:
        rows = conn.execute("SELECT image_name FROM findings").fetchall()
    assert rows == [(None,)] * 3
    assert list((data / "images").iterdir()) == []


def test_privacy_is_on_unless_turned_off_and_off_shows_on_the_screen_and_in_the_image(
    tmp_path: Path,
) -> None:
    assert AppConfig().privacy.enabled is True
    recorder = _recorder(tmp_path, PrivacyConfig(enabled=False))
    raw = cv2.imread(str(frames("plate")[0][0]))
    try:
        recorder.record(_graded(raw, 0))
        status = recorder.status()
        (row,) = recorder.outbox.pending_findings(5)
        jpeg = _stored(recorder.outbox, row.finding_id)
    finally:
        recorder.stop()
    assert Alert.PRIVACY_OFF in status.alerts and status.privacy.enabled is False
    note = read_note(jpeg)
    assert note is not None and note["anonymised"] is False


@pytest.mark.slow
def test_privacy_check_cli_prints_the_plates_and_writes_anonymised_images(tmp_path: Path) -> None:
    (path, boxes), _ = frames("plate")
    missing = tmp_path / "nope.jpg"
    result = subprocess.run(
        [sys.executable, "-m", "edge", "privacy", "check", str(path), str(missing),
         "--out", str(tmp_path / "out"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1  # one image could not be read
    assert f"{missing}: not a readable image" in result.stderr
    doc = json.loads(result.stdout.splitlines()[0])
    x0, y0, x1, y1 = boxes[0]
    assert any(
        b[0] <= x0 + 2 and b[1] <= y0 + 2 and b[2] >= x1 - 2 and b[3] >= y1 - 2
        for b in (r["box_px"] for r in doc["regions"])
    ), doc["regions"]
    written = cv2.imread(doc["out"])
    assert sharpness(written, boxes[0]) < 0.1 * sharpness(cv2.imread(str(path)), boxes[0])


def _config_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "vehicle.toml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_only_an_explicit_false_turns_privacy_off_and_a_missing_model_is_named(
    tmp_path: Path,
) -> None:
    for loose in ('"no"', "0", '"off"'):  # never coerced to false
        result = _config_check(tmp_path, f"[privacy]\nenabled = {loose}\n")
        assert result.returncode == 1
        assert "line 2: privacy.enabled: Input should be a valid boolean" in result.stderr
    result = _config_check(tmp_path, '[privacy]\nplate_model = "det.onnx"\n')
    assert result.returncode == 1
    assert f"privacy.plate_model: {tmp_path / 'det.onnx'}: no such file" in result.stderr
    assert _config_check(tmp_path, "[privacy]\nenabled = false\n").returncode == 0


def test_image_properties_v2_refuse_a_malformed_anonymised_flag() -> None:
    props = image_user_properties(
        {
            "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "vehicle_id": "v1",
            "boot_id": "b",
            "seq": 1,
        },
        {"anonymised": True, "by": "x"},
    )
    assert schema_errors("image", props) == []
    assert schema_errors("image", {**props, "anonymised": "maybe"}) != []


@pytest.mark.slow
def test_an_anonymiser_process_that_died_is_started_again_for_the_next_image(
    tmp_path: Path,
) -> None:
    outbox = _outbox(tmp_path)
    stage = PrivacyStage(PrivacyConfig(), outbox, jpeg_quality=85).start()
    assert stage.anonymiser is not None
    first = stage.anonymiser._proc
    first.kill()  # e.g. the kernel's OOM killer
    first.wait()
    ((path, boxes),) = frames("face")
    raw = cv2.imread(str(path))
    finding = make_finding(3)
    outbox.add(finding, None)
    stage.submit(finding, raw)
    assert stage.wait_idle(120)
    status = stage.status()
    stage.close()
    assert status.stored == 1 and status.withheld == 0 and status.error is None
    assert stage.anonymiser._proc.pid != first.pid
    stored = cv2.imdecode(np.frombuffer(_stored(outbox, finding.id), np.uint8), cv2.IMREAD_COLOR)
    assert sharpness(stored, boxes[0]) < 0.1 * sharpness(raw, boxes[0])
    outbox.close()


@pytest.mark.slow
def test_a_worker_lost_mid_image_withholds_that_image_says_why_then_recovers(
    tmp_path: Path,
) -> None:
    outbox = _outbox(tmp_path)
    stage = PrivacyStage(PrivacyConfig(), outbox, jpeg_quality=85).start()
    assert stage.anonymiser is not None and stage.anonymiser._proc.stdout is not None
    stage.anonymiser._proc.stdout.close()  # its answer can no longer be read
    raw = cv2.imread(str(frames("plate")[0][0]))
    lost, second = make_finding(2, seq=0), make_finding(2, seq=1)
    outbox.add(lost, None)
    stage.submit(lost, raw)
    assert stage.wait_idle(120)
    status = stage.status()
    assert status.withheld == 1 and status.stored == 0
    assert status.error is not None and "anonymiser's process failed" in status.error
    outbox.add(second, None)
    stage.submit(second, raw)
    assert stage.wait_idle(120)
    status = stage.status()
    stage.close()
    assert status.stored == 1 and status.error is None
    with sqlite3.connect(outbox.db_path) as conn:
        names = dict(conn.execute("SELECT id, image_name FROM findings").fetchall())
    assert names[lost.id] is None and names[second.id] is not None
    outbox.close()


@pytest.mark.slow
def test_a_lossless_replay_waits_for_room_and_keeps_every_image(tmp_path: Path) -> None:
    import threading

    raw = cv2.imread(str(frames("plate")[0][0]))
    outbox = _outbox(tmp_path)
    stage = PrivacyStage(PrivacyConfig(queue_size=1), outbox, jpeg_quality=85, lossless=True)
    findings = [make_finding(g, seq=i) for i, g in enumerate((1, 1, 2))]
    for finding in findings:
        outbox.add(finding, None)
    submitter = threading.Thread(target=lambda: [stage.submit(f, raw) for f in findings])
    submitter.start()
    submitter.join(timeout=2.0)
    assert submitter.is_alive()  # held at the second image: the queue of one is full
    stage.start()
    submitter.join(timeout=120)
    assert not submitter.is_alive() and stage.wait_idle(120)
    status = stage.status()
    stage.close()
    assert status.withheld == 0 and status.stored == 3
    outbox.close()


@pytest.mark.slow
def test_a_replay_with_a_corrupt_detector_model_is_graded_and_recorded_without_images(
    tmp_path: Path,
) -> None:
    from edge.config.loader import demo_config

    model = tmp_path / "det.onnx"
    model.write_bytes(b"\x08\x07" + bytes(range(256)) * 40)
    base = demo_config(tmp_path / "data", fast=True)
    config = base.model_copy(update={"privacy": PrivacyConfig(plate_model=model)})
    recorder = Recorder(config, lockstep=True).start()
    try:
        assert recorder.wait_ended(timeout_s=300)
        status = recorder.status()
    finally:
        recorder.stop()
    stored = sum(status.findings_by_grade[g] for g in "123")
    assert status.model.graded > 100 and stored > 10  # grading and recording went on
    # Each finding's image was withheld (and better frames of merged ones, counted too).
    assert status.privacy.withheld >= stored and status.privacy.stored == 0
    assert Alert.PRIVACY_FAILED in status.alerts and str(model) in str(status.privacy.error)
    assert list((tmp_path / "data" / "images").iterdir()) == []
