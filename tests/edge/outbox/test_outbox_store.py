"""The outbox on a real SQLite file and real JPEGs: order, durability order, EXIF, track points."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest

from edge.outbox import Outbox, OutboxConfig, OutboxError
from edge.outbox.images import dms_to_deg
from edge.types import Fix, FixMode, FixQuality
from edge.wire.serialize import finding_from_dict

from support.outbox import T0, make_finding, minutes, real_jpegs, rows

BIG = 10**12  # a cap nobody reaches


def open_outbox(data_dir: Path, **kw: int) -> Outbox:
    return Outbox.open(
        data_dir,
        image_cap_bytes=kw.get("image_cap_bytes", BIG),
        min_free_bytes=kw.get("min_free_bytes", 0),
    )


def test_creates_a_wal_database_and_an_image_folder(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "data") as outbox:
        assert outbox.db_path == tmp_path / "data" / "outbox.sqlite3"
        assert (tmp_path / "data" / "images").is_dir()
        assert outbox.recovered_from is None
    assert rows(tmp_path / "data" / "outbox.sqlite3", "PRAGMA journal_mode") == [("wal",)]


def test_pending_findings_come_grade_3_first_then_by_grade_and_age(tmp_path: Path) -> None:
    rng = random.Random(7)
    findings = [
        make_finding(grade, T0 + minutes(m), seq=i)
        for i, (grade, m) in enumerate(
            [(1, 0), (3, 5), (2, 1), (1, -3), (3, -1), (2, 9), (1, 4), (3, 2)]
        )
    ]
    shuffled = findings[:]
    rng.shuffle(shuffled)
    with open_outbox(tmp_path) as outbox:
        for f in shuffled:
            assert outbox.add(f, None)
        pending = outbox.pending_findings(limit=100)

        expected = sorted(findings, key=lambda f: (-f.grade, f.captured_at_utc))
        assert [p.finding_id for p in pending] == [f.id for f in expected]
        by_id = {f.id: f for f in findings}
        for p in pending:
            assert finding_from_dict(p.finding) == by_id[p.finding_id]
            assert p.grade == by_id[p.finding_id].grade
            assert p.captured_at_utc == by_id[p.finding_id].captured_at_utc

        first_two = [p.finding_id for p in pending[:2]]
        assert [p.finding_id for p in outbox.pending_findings(2)] == first_two
        rest = outbox.pending_findings(100, exclude=first_two)
        assert [p.finding_id for p in rest] == [f.id for f in expected[2:]]

        assert outbox.mark_finding_sent(expected[0].id)
        assert not outbox.mark_finding_sent(expected[0].id)  # already marked
        assert not outbox.mark_finding_sent("0190aaaa-0000-7000-8000-000000000000")
        assert outbox.mark_findings_sent([f.id for f in expected[1:3]]) == 2
        assert [p.finding_id for p in outbox.pending_findings(100)] == [f.id for f in expected[3:]]
    # Durable: a new process sees the same state.
    with open_outbox(tmp_path) as again:
        assert [p.finding_id for p in again.pending_findings(100)] == [f.id for f in expected[3:]]


def test_images_are_offered_after_their_finding_and_kept_after_sending(tmp_path: Path) -> None:
    jpegs = real_jpegs(3)
    findings = [make_finding(g, T0 + minutes(i), seq=i) for i, g in enumerate([1, 3, 2])]
    with open_outbox(tmp_path) as outbox:
        for f, jpeg in zip(findings, jpegs, strict=True):
            outbox.add(f, jpeg)
        no_image = make_finding(3, T0, seq=9)
        outbox.add(no_image, None)
        assert outbox.pending_images(10) == []  # no finding sent yet

        outbox.mark_findings_sent([f.id for f in findings] + [no_image.id])
        images = outbox.pending_images(10)
        assert [i.finding_id for i in images] == [findings[1].id, findings[2].id, findings[0].id]
        for image in images:
            assert image.path == tmp_path / "images" / f"{image.finding_id}.jpg"
            assert image.size_bytes == image.path.stat().st_size
        assert [i.finding_id for i in outbox.pending_images(10, exclude=[findings[1].id])] == [
            findings[2].id,
            findings[0].id,
        ]

        assert outbox.mark_image_sent(findings[1].id)
        assert not outbox.mark_image_sent(findings[1].id)
        assert [i.finding_id for i in outbox.pending_images(10)] == [
            findings[2].id,
            findings[0].id,
        ]
        assert (tmp_path / "images" / f"{findings[1].id}.jpg").is_file()


def test_image_carries_gps_and_time_in_exif_and_the_same_pixels(tmp_path: Path) -> None:
    jpeg = real_jpegs(1)[0]
    finding = make_finding(2, T0.replace(microsecond=250000), seq=3)
    assert finding.position is not None
    unplaced = make_finding(1, T0, seq=4, positioned=False)
    with open_outbox(tmp_path) as outbox:
        outbox.add(finding, jpeg)
        outbox.add(unplaced, jpeg)
    stored = tmp_path / "images" / f"{finding.id}.jpg"
    exif = piexif.load(str(stored))
    gps = exif["GPS"]
    lat = dms_to_deg(gps[piexif.GPSIFD.GPSLatitude], gps[piexif.GPSIFD.GPSLatitudeRef])
    lon = dms_to_deg(gps[piexif.GPSIFD.GPSLongitude], gps[piexif.GPSIFD.GPSLongitudeRef])
    assert lat == pytest.approx(finding.position.lat_deg, abs=1e-7)
    assert lon == pytest.approx(finding.position.lon_deg, abs=1e-7)
    assert gps[piexif.GPSIFD.GPSDateStamp] == b"2025:04:01"
    assert gps[piexif.GPSIFD.GPSTimeStamp][:2] == ((0, 1), (30, 1))
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2025:04:01 00:30:00"
    assert finding.id.encode() in exif["0th"][piexif.ImageIFD.ImageDescription]

    original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (cv2.imread(str(stored), cv2.IMREAD_COLOR) == original).all()

    unplaced_exif = piexif.load(str(tmp_path / "images" / f"{unplaced.id}.jpg"))
    assert piexif.GPSIFD.GPSLatitude not in unplaced_exif["GPS"]


def test_add_is_idempotent_on_the_finding_id(tmp_path: Path) -> None:
    jpeg_a, jpeg_b = real_jpegs(2)
    finding = make_finding(2)
    with open_outbox(tmp_path) as outbox:
        assert outbox.add(finding, jpeg_a)
        image = tmp_path / "images" / f"{finding.id}.jpg"
        first = image.read_bytes()
        assert not outbox.add(finding, jpeg_b)
        assert image.read_bytes() == first
        assert outbox.summary().stored == 1
    assert rows(tmp_path / "outbox.sqlite3", "SELECT COUNT(*) FROM findings") == [(1,)]


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as outbox:
        with pytest.raises(ValueError, match="not a JPEG"):
            outbox.add(make_finding(1), b"PNG? no")
        with pytest.raises(ValueError, match="identifier"):
            outbox.add(make_finding(1, finding_id="../../etc/passwd"), real_jpegs(1)[0])
        assert outbox.summary().stored == 0
    assert list((tmp_path / "images").iterdir()) == []


def test_image_is_on_disk_before_the_row_commits(tmp_path: Path) -> None:
    """A commit that fails after the image was written leaves an orphan image, no row."""
    jpeg = real_jpegs(1)[0]
    finding = make_finding(3)
    outbox = Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0, busy_timeout_s=0.2)
    blocker = sqlite3.connect(tmp_path / "outbox.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            outbox.add(finding, jpeg)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    image = tmp_path / "images" / f"{finding.id}.jpg"
    assert image.is_file()
    assert rows(tmp_path / "outbox.sqlite3", "SELECT COUNT(*) FROM findings") == [(0,)]
    outbox.close()

    # The next owner of the data directory deletes the orphan; the finding can be re-added.
    with open_outbox(tmp_path) as reopened:
        assert not image.exists()
        assert reopened.add(finding, jpeg)
        assert image.is_file()


def test_only_the_lock_holder_deletes_orphans(tmp_path: Path) -> None:
    first = open_outbox(tmp_path)
    orphan = tmp_path / "images" / "0190aaaa-0000-7000-8000-000000000001.jpg"
    orphan.write_bytes(real_jpegs(1)[0])
    second = open_outbox(tmp_path)  # e.g. `sync drain` beside the recorder
    assert orphan.exists()
    second.close()
    first.close()
    open_outbox(tmp_path).close()
    assert not orphan.exists()


def test_track_points_are_durable_and_marked_sent(tmp_path: Path) -> None:
    fixes = [
        Fix(
            mono_ns=k,
            time_utc=T0 + minutes(k / 60),
            lat_deg=35.6073 + k * 1e-4,
            lon_deg=140.1063 - k * 1e-4,
            mode=FixMode.FIX_3D,
            quality=FixQuality.GPS,
            speed_mps=8.0 + k,
            track_deg=90.0,
            hdop=1.1,
        )
        for k in range(5)
    ]
    no_fix = Fix(mono_ns=9, time_utc=None, lat_deg=None, lon_deg=None, mode=FixMode.NO_FIX)
    with open_outbox(tmp_path) as outbox:
        ids = [outbox.add_track_point(f) for f in fixes]
        assert outbox.add_track_point(no_fix) is None
    with open_outbox(tmp_path) as outbox:
        points = outbox.pending_track(100)
        assert [p.id for p in points] == ids
        for point, fix in zip(points, fixes, strict=True):
            assert (point.time_utc, point.lat_deg, point.lon_deg, point.speed_mps) == (
                fix.time_utc,
                fix.lat_deg,
                fix.lon_deg,
                fix.speed_mps,
            )
            assert point.fix_mode == 3
        assert outbox.mark_track_sent([p.id for p in points[:3] if p.id is not None]) == 3
        assert [p.id for p in outbox.pending_track(100)] == ids[3:]
        assert [p.id for p in outbox.pending_track(1)] == ids[3:4]


def test_graded_frames_are_counted_and_the_counts_persist(tmp_path: Path) -> None:
    grades = [0] * 37 + [1] * 5 + [2] * 2 + [3]
    with open_outbox(tmp_path) as outbox:
        for g in grades:
            outbox.count_frame(g)
    with open_outbox(tmp_path) as outbox:
        assert outbox.summary().frames_by_grade == {str(g): grades.count(g) for g in range(4)}
        assert outbox.summary().stored == 0  # counted, not stored


def test_stats_report_pending_bytes_and_oldest_age(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    jpegs = real_jpegs(2)
    old = make_finding(1, now - minutes(90))
    new = make_finding(3, now - minutes(2))
    with open_outbox(tmp_path, min_free_bytes=1) as outbox:
        outbox.add(old, jpegs[0])
        outbox.add(new, jpegs[1])
        stats = outbox.stats()
        payload = sum(
            n
            for (n,) in rows(
                tmp_path / "outbox.sqlite3", "SELECT LENGTH(CAST(payload AS BLOB)) FROM findings"
            )
        )
        image_bytes = sum(p.stat().st_size for p in (tmp_path / "images").iterdir())
        assert stats.pending == 2
        assert stats.stored == 2
        assert stats.pending_bytes == payload + image_bytes
        assert stats.oldest_age_s == pytest.approx(90 * 60, abs=10)
        assert stats.disk_free_bytes is not None and stats.disk_free_bytes > 0
        assert not stats.disk_low
        outbox.mark_finding_sent(old.id)
        after = outbox.stats()
        assert after.pending == 1
        assert after.oldest_age_s == pytest.approx(2 * 60, abs=10)


@pytest.mark.slow
def test_concurrent_writers_and_readers_lose_nothing(tmp_path: Path) -> None:
    jpeg = real_jpegs(1)[0]
    errors: list[BaseException] = []
    written: list[str] = []
    lock = threading.Lock()
    with open_outbox(tmp_path) as outbox:
        stop = threading.Event()

        def writer(k: int) -> None:
            try:
                for i in range(40):
                    f = make_finding(1 + (i % 3), T0 + minutes(i), seq=k * 100 + i)
                    outbox.add(f, jpeg if i % 4 == 0 else None)
                    with lock:
                        written.append(f.id)
            except BaseException as exc:
                errors.append(exc)

        def reader() -> None:
            try:
                while not stop.is_set():
                    outbox.stats()
                    outbox.pending_findings(20)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        watcher = threading.Thread(target=reader)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        assert errors == []
        assert {p.finding_id for p in outbox.pending_findings(1000)} == set(written)
    assert rows(tmp_path / "outbox.sqlite3", "PRAGMA integrity_check") == [("ok",)]


def test_config_section_defaults_and_strictness() -> None:
    cfg = OutboxConfig()
    assert cfg.image_cap_bytes == 2000 * 1024 * 1024
    assert cfg.min_free_bytes == 500 * 1024 * 1024
    with pytest.raises(ValueError, match="image_cap"):
        OutboxConfig.model_validate({"image_cap": 10})
    for name, field in OutboxConfig.model_fields.items():
        assert field.description, f"outbox.{name} has no description"


def test_an_image_that_cannot_be_written_still_leaves_the_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    finding = make_finding(3)
    with open_outbox(tmp_path) as outbox:
        # A directory where the image's temporary file must go: the write fails with an OS
        # error, as it would on a full or failing disk.
        (tmp_path / "images" / f".{finding.id}.jpg.tmp").mkdir()
        with caplog.at_level(logging.ERROR):
            assert outbox.add(finding, real_jpegs(1)[0])
        assert [p.finding_id for p in outbox.pending_findings(5)] == [finding.id]
        assert outbox.summary().images_missing == 1
        outbox.mark_finding_sent(finding.id)
        assert outbox.pending_images(5) == []
    assert not (tmp_path / "images" / f"{finding.id}.jpg").exists()
    assert any(finding.id in r.getMessage() for r in caplog.records)


def test_unusable_data_dir_and_newer_schema_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutboxError, match="a_file"):
        open_outbox(tmp_path / "a_file" / "data")

    open_outbox(tmp_path / "data").close()
    conn = sqlite3.connect(tmp_path / "data" / "outbox.sqlite3")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="schema version 99"):
        open_outbox(tmp_path / "data")
    # The refusal left the database as it was, and the directory lock free.
    assert rows(tmp_path / "data" / "outbox.sqlite3", "SELECT value FROM meta") == [("99",)]
