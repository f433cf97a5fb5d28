"""A full disk, at start and while recording, on a real tmpfs of a few MiB: the outbox is
kept (never set aside), images make room, every finding is recorded, nothing crashes."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import FindingOrigin

from support.disk import fill
from support.outbox import T0, make_finding, minutes, real_jpegs, rows
from support.vehicle import looping_demo_config

EXE = str(Path(sys.executable).with_name("roadpatrol"))
BIG = 10**12
RESERVE_NAME = "outbox.reserve"  # edge.outbox.diskspace.RESERVE_NAME


def _ids(db: Path) -> set[str]:
    try:
        return {r[0] for r in rows(db, "SELECT id FROM findings")}
    except sqlite3.Error:
        return set()


def _fill_outbox(data_dir: Path, n: int, with_images: int) -> list[str]:
    jpegs = real_jpegs(with_images)
    ids = []
    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        for i in range(n):
            f = make_finding(1 + i % 3, T0 + minutes(i), seq=i)
            assert outbox.add(f, jpegs[i] if i < with_images else None)
            ids.append(f.id)
    return ids


def _config(tmp_path: Path, data_dir: Path, extra: str = "") -> Path:
    return looping_demo_config(
        tmp_path / "vehicle.toml",
        vehicle_id="disk-full",
        data_dir=data_dir,
        fps=8.0,
        fallback_interval_s=0.1,
        replay_speed=4.0,
        extra=extra,
    )


def _run_until(cfg: Path, db: Path, more_than: int) -> tuple[int, str]:
    """Run `roadpatrol run` until the outbox holds more than ``more_than`` findings; stop it
    as systemd does (SIGTERM); returns (exit status, stderr)."""
    proc = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(_ids(db)) <= more_than and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("reserve", [True, False], ids=["with-reserve", "older-outbox"])
def test_full_disk_at_start_keeps_the_outbox_and_goes_on_recording(
    small_disk: Path, tmp_path: Path, reserve: bool
) -> None:
    data_dir = small_disk / "data"
    before = _fill_outbox(data_dir, 300, with_images=12)
    if not reserve:  # an outbox written before the reserve existed
        (data_dir / RESERVE_NAME).unlink(missing_ok=True)
    fill(small_disk)
    db = data_dir / "outbox.sqlite3"

    code, err = _run_until(_config(tmp_path, data_dir), db, more_than=len(before) + 3)

    assert "Traceback" not in err, err
    assert code == 0, err
    assert "full" in err, err  # said on the console (and so in the journal)
    assert not list(data_dir.glob("*corrupt*")), "a healthy outbox was set aside"
    stored = _ids(db)
    assert set(before) <= stored, f"{len(set(before) - stored)} findings lost"
    assert len(stored) > len(before) + 3, "nothing recorded on the full disk"
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    evicted = rows(db, "SELECT count(*) FROM findings WHERE image_state = 'evicted'")[0][0]
    assert evicted > 0  # the room came from images, not from records


@pytest.mark.slow
def test_a_disk_filled_while_recording_does_not_stop_the_recorder(
    small_disk: Path, tmp_path: Path
) -> None:
    data_dir = small_disk / "data"
    db = data_dir / "outbox.sqlite3"
    cfg = _config(tmp_path, data_dir, "[outbox]\nmin_free_mb = 0\n")
    proc = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_ids(db)) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        fill(small_disk, check=False)  # another program takes the rest of the disk
        before = _ids(db)
        while len(_ids(db)) < len(before) + 10 and time.monotonic() < deadline:
            assert proc.poll() is None, "the recorder ended on a full disk"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode == 0, err
    after = _ids(db)
    assert before <= after and len(after) >= len(before) + 10, err
    assert "min_free_mb 0 MiB is too little" in err


@pytest.mark.slow
def test_an_outbox_that_cannot_open_is_one_line_and_kept(small_disk: Path, tmp_path: Path) -> None:
    data_dir = small_disk / "data"
    before = _fill_outbox(data_dir, 50, with_images=0)  # no image to evict
    (data_dir / RESERVE_NAME).unlink(missing_ok=True)
    fill(small_disk)
    db = data_dir / "outbox.sqlite3"
    image = db.read_bytes()

    proc = subprocess.run(
        [EXE, "run", "--headless", "--config", str(_config(tmp_path, data_dir))],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]  # one line says why, after the log
    assert last.startswith("roadpatrol run: ") and str(db) in last
    assert "disk is full" in last
    assert db.read_bytes() == image and not list(data_dir.glob("*corrupt*"))
    (small_disk / "ballast").unlink()  # room again: everything is still there
    assert set(before) <= _ids(db)


def test_min_free_0_and_a_disk_filled_by_others_loses_no_manual_mark(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = small_disk / "data"
    jpegs = real_jpegs(12)
    marks, lost = [], []
    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        for i, jpeg in enumerate(jpegs):
            outbox.add(make_finding(1, T0 + minutes(i), seq=i), jpeg)
        fill(small_disk)  # another program takes every byte left
        with caplog.at_level(logging.WARNING):
            for i in range(152):
                mark = replace(
                    make_finding(3, T0 + minutes(100 + i), seq=100 + i),
                    origin=FindingOrigin.MANUAL,
                )
                try:
                    assert outbox.add(mark, None)
                    marks.append(mark.id)
                except sqlite3.Error as exc:
                    lost.append(f"{mark.id}: {exc}")
        assert not lost, f"{len(lost)} manual marks lost, e.g. {lost[0]}"
        assert outbox.stats().disk_low
        # The floor was raised to one the records can live in, and the operator told.
        assert outbox.min_free_bytes > 0
        assert any("min_free_mb 0 MiB is too little" in note for note in outbox.notes)
    db = data_dir / "outbox.sqlite3"
    assert set(marks) <= _ids(db)
    # The room came from the photos (by the floor, or by the reserve's release on SQLITE_FULL).
    assert rows(db, "SELECT count(*) FROM findings WHERE image_state = 'evicted'")[0][0] > 0
    assert "evicting" in caplog.text


def test_photos_attached_on_a_disk_with_no_room_left_cost_only_the_photos(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The privacy stage attaches each photo after its record is stored. When neither the
    # reserve nor any photo can give room, the record stays, the photo goes, one line says so.
    data_dir = small_disk / "data"
    jpegs = real_jpegs(40)
    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        findings = [make_finding(2, T0 + minutes(i), seq=i) for i in range(len(jpegs))]
        for f in findings:
            assert outbox.add(f, None)
        (data_dir / RESERVE_NAME).unlink(missing_ok=True)
        fill(small_disk)
        with caplog.at_level(logging.ERROR):
            attached = [
                outbox.attach_image(f, jpeg) for f, jpeg in zip(findings, jpegs, strict=True)
            ]
    db = data_dir / "outbox.sqlite3"
    assert set(f.id for f in findings) <= _ids(db)
    assert not all(attached), "the disk never ran out of room"
    named = {r[0] for r in rows(db, "SELECT image_name FROM findings WHERE image_name IS NOT NULL")}
    on_disk = {p.name for p in (data_dir / "images").glob("*.jpg")}
    assert on_disk <= named, f"photos on disk without a record naming them: {on_disk - named}"
    assert "kept without its image" in caplog.text or "storing the record without it" in caplog.text


def test_frame_counts_on_a_full_disk_wait_in_memory_and_are_all_stored_later(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Grade-0 frames are only counted. With no photo to evict and no reserve, the counts'
    # commit fails: they must wait in memory, not stop the capture path or be dropped.
    data_dir = small_disk / "data"
    now = [0.0]
    with Outbox.open(
        data_dir, image_cap_bytes=BIG, min_free_bytes=0, monotonic=lambda: now[0]
    ) as outbox:
        assert outbox.add(make_finding(2, T0, seq=0), None)
        (data_dir / RESERVE_NAME).unlink(missing_ok=True)
        with sqlite3.connect(data_dir / "outbox.sqlite3") as other:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow the WAL
        ballast = fill(small_disk)
        with caplog.at_level(logging.WARNING):
            for second in range(30):
                now[0] = float(second)
                for grade in (0, 0, 0, 1):
                    outbox.count_frame(grade)
        assert "frame counts not stored yet" in caplog.text
        ballast.unlink()
        now[0] = 60.0
        outbox.count_frame(0)
    frames = Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0)
    try:
        assert frames.summary().frames_by_grade == {"0": 91, "1": 30, "2": 0, "3": 0}
    finally:
        frames.close()
