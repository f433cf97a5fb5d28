"""`roadpatrol run` and `roadpatrol demo` as real processes."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.vehicle import DEMO, looping_demo_config

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))


def _committed_ids(db: Path) -> set[str]:
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM findings")}
    except sqlite3.OperationalError:
        return set()  # not created yet
    finally:
        conn.close()


def _config(tmp_path: Path) -> Path:
    return looping_demo_config(
        tmp_path / "vehicle.toml",
        vehicle_id="kill-test",
        data_dir=tmp_path / "data",
        fps=8.0,
        fallback_interval_s=0.1,
        replay_speed=4.0,
    )


def test_kill_9_during_writes_loses_no_committed_finding(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    db = tmp_path / "data" / "outbox.sqlite3"
    rng = random.Random(7)
    seen: set[str] = set()
    for _ in range(3):
        proc = subprocess.Popen(
            [EXE, "run", "--headless", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        target = len(seen) + rng.randint(3, 8)
        deadline = time.monotonic() + 90
        while len(_committed_ids(db)) < target and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 0.5))  # somewhere in the middle of the next write
        before = _committed_ids(db)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert len(before) >= target
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        after = {r[0] for r in conn.execute("SELECT id FROM findings")}
        images = {
            r[0]
            for r in conn.execute("SELECT image_name FROM findings WHERE image_state = 'pending'")
        }
        conn.close()
        assert before <= after, "a committed finding vanished"
        assert all((tmp_path / "data" / "images" / name).is_file() for name in images)
        seen = after


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    db = tmp_path / "data" / "outbox.sqlite3"
    deadline = time.monotonic() + 90
    while not _committed_ids(db) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # the data directory lock was released: the outbox CLI (and a restart) can open it
    status = subprocess.run(
        [EXE, "outbox", "status", "--data-dir", str(tmp_path / "data"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0
    assert json.loads(status.stdout)["stored"] == len(_committed_ids(db))


def test_an_unreadable_nmea_log_is_reported_and_recording_goes_on(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    missing = tmp_path / "nope.nmea"
    cfg.write_text(cfg.read_text().replace(str(DEMO / "chiba_drive.nmea"), str(missing)))
    proc = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "data" / "outbox.sqlite3"
    try:
        deadline = time.monotonic() + 90
        while not _committed_ids(db) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the recorder stopped"
        assert _committed_ids(db), "nothing recorded without a GPS"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"gps.nmea_file: cannot read NMEA log {missing}" in stderr
    assert "Traceback" not in stderr
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    payloads = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM findings")]
    conn.close()
    assert payloads and all(p["position"] is None for p in payloads)  # kept, ungeotagged


def test_demo_headless_json_summary_matches_the_outbox(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = subprocess.run(
        [EXE, "demo", "--headless", "--json", "--fast", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {
        "frames",
        "graded",
        "findings_by_grade",
        "queued",
        "dropped_frames",
        "elapsed_s",
        "fps",
    }
    assert summary["frames"] == 120 and summary["dropped_frames"] == 0
    # fps is rounded to 0.01 and elapsed_s to 0.001: on a slow machine (2 fps) a relative
    # bound would be tighter than the rounding itself.
    assert summary["fps"] == pytest.approx(summary["frames"] / summary["elapsed_s"], abs=0.006)
    outbox = json.loads(
        subprocess.run(
            [EXE, "outbox", "status", "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    by_grade = summary["findings_by_grade"]
    assert summary["queued"] == outbox["pending"] == by_grade["1"] + by_grade["2"] + by_grade["3"]
    assert int(by_grade["0"]) == outbox["frames_by_grade"].get("0", 0)
