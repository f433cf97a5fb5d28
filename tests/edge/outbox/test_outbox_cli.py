"""`roadpatrol outbox status` against an outbox built here, run as the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.outbox import Outbox

from support.outbox import make_finding, minutes, real_jpegs, rows

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

# The installed console script, as a technician would run it.
ROADPATROL = str(Path(sys.executable).with_name("roadpatrol"))


def roadpatrol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROADPATROL, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict]:
    """An outbox with sent and unsent findings, evictions, track points and frame counts."""
    data_dir = tmp_path / "vehicle"
    now = datetime.now(UTC)
    jpegs = sorted(real_jpegs(6), key=len)
    grades = [3, 1, 2, 1, 2, 3]
    findings = [make_finding(g, now - minutes(60 - i), seq=i) for i, g in enumerate(grades)]
    with Outbox.open(data_dir, image_cap_bytes=10**12, min_free_bytes=0) as outbox:
        for f, jpeg in zip(findings, jpegs, strict=True):
            outbox.add(f, jpeg)
        outbox.add(make_finding(1, now - minutes(5), seq=9, positioned=False), None)
        for _ in range(11):
            outbox.count_frame(0)
        outbox.count_frame(3)
        outbox.mark_findings_sent([findings[0].id, findings[1].id])
        outbox.mark_image_sent(findings[0].id)
    # Reopen under a cap that forces the sent image and the oldest grade-1 image out.
    sizes = {p.stem: p.stat().st_size for p in (data_dir / "images").glob("*.jpg")}
    cap = sum(sizes.values()) - sizes[findings[0].id] - sizes[findings[1].id]
    with Outbox.open(data_dir, image_cap_bytes=cap, min_free_bytes=0):
        pass
    expected = {
        "findings": findings,
        "now": now,
        "evicted": [findings[0].id, findings[1].id],
        "sizes": sizes,
    }
    return data_dir, expected


def test_json_status_matches_the_database(built: tuple[Path, dict]) -> None:
    data_dir, exp = built
    result = roadpatrol("outbox", "status", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    db = data_dir / "outbox.sqlite3"
    findings = exp["findings"]
    unsent = findings[2:]  # plus the ungeotagged one without an image
    payload_unsent = sum(
        n
        for (n,) in rows(
            db, "SELECT LENGTH(CAST(payload AS BLOB)) FROM findings WHERE sent_at IS NULL"
        )
    )
    images_unsent = sum(exp["sizes"][f.id] for f in findings[1:] if f.id not in exp["evicted"])
    assert report["pending"] == len(unsent) + 1
    assert report["pending_by_grade"] == {"0": 0, "1": 2, "2": 2, "3": 1}
    assert report["stored"] == 7
    assert report["stored_by_grade"] == {"0": 0, "1": 3, "2": 2, "3": 2}
    assert report["pending_images"] == 4
    assert report["pending_bytes"] == payload_unsent + images_unsent
    assert report["evictions"] == 2
    assert report["evicted_bytes"] == sum(exp["sizes"][i] for i in exp["evicted"])
    assert report["images_on_disk"] == 4
    assert report["image_bytes_on_disk"] == sum(
        p.stat().st_size for p in (data_dir / "images").glob("*.jpg")
    )
    age = (datetime.now(UTC) - unsent[0].captured_at_utc).total_seconds()
    assert report["oldest_age_s"] == pytest.approx(age, abs=30)
    assert report["frames_by_grade"] == {"0": 11, "1": 0, "2": 0, "3": 1}
    assert report["pending_track_points"] == 0
    assert report["data_dir"] == str(data_dir)
    assert isinstance(report["disk_free_bytes"], int) and report["disk_free_bytes"] > 0


def test_text_status_is_readable(built: tuple[Path, dict]) -> None:
    data_dir, _ = built
    result = roadpatrol("outbox", "status", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "pending findings  5 (grade 1: 2, grade 2: 2, grade 3: 1)" in result.stdout
    assert "evicted images    2" in result.stdout


def test_status_changes_nothing_on_disk(built: tuple[Path, dict]) -> None:
    def snapshot() -> dict[str, bytes]:
        # SQLite's -wal/-shm side files may appear for any reader; the content may not change.
        return {
            str(p.relative_to(data_dir)): p.read_bytes()
            for p in data_dir.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        }

    data_dir, _ = built
    before = snapshot()
    assert roadpatrol("outbox", "status", "--data-dir", str(data_dir), "--json").returncode == 0
    assert snapshot() == before


def test_missing_data_dir_is_a_usage_error(tmp_path: Path) -> None:
    result = roadpatrol("outbox", "status", "--data-dir", str(tmp_path / "nope"), "--json")
    assert result.returncode == 2
    assert str(tmp_path / "nope") in result.stderr
    assert "does not exist" in result.stderr
    assert result.stdout == ""

    result = roadpatrol("outbox", "status", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no outbox" in result.stderr


def test_corrupt_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    db.write_bytes(b"not sqlite at all\n" * 100)
    result = roadpatrol("outbox", "status", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 1
    assert str(db) in result.stderr
    assert db.read_bytes() == b"not sqlite at all\n" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.sqlite3"]
