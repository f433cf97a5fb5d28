"""The driver's screen attached to a real `roadpatrol run` process through its status socket.

The recorder is a separate process on the demo drive (image folder + NMEA replay); the screen
is the one `roadpatrol tui --data-dir` builds, driven by Textual's pilot. What the screen shows
must come from that process, and what the crew presses must reach its outbox.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.status_socket import RemoteRecorder, socket_path_for
from tui.app import PatrolApp, create_app
from tui.i18n import CATALOGUE

from support.tui_screen import pilot_wait, screen_text, wait_until
from support.vehicle import looping_demo_config

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))
EN = CATALOGUE["en"]
VEHICLE = "attach-run-7"
_GRADES = ("3", "2", "1")
# The demo NMEA track runs from 35°36.438'N 140°06.378'E to 35°36.484'N 140°06.598'E.
_DEMO_POSITION = re.compile(r"35\.60[6-9]\d\d, 140\.1[01]\d{3}")
_GRADED = re.compile(r"(\d+) graded")


def _config(tmp_path: Path, data_dir: Path) -> Path:
    return looping_demo_config(
        tmp_path / "vehicle.toml",
        vehicle_id=VEHICLE,
        data_dir=data_dir,
        fps=4.0,
        fallback_interval_s=0.25,
        replay_speed=1.0,
        extra="[mqtt]\nenabled = false",
    )


def _outbox_rows(db: Path) -> list[tuple[str, int, str]]:
    """(id, grade, origin) of every finding the recorder committed, read as `sync` would."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT id, grade, payload FROM findings").fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        conn.close()
    return [(i, g, json.loads(p)["origin"]) for i, g, p in rows]


def _short(finding_id: str) -> str:
    return finding_id.replace("-", "")[-8:]


def _counters(text: str) -> dict[str, int]:
    line = next(x for x in text.splitlines() if EN["counts.no_damage"] in x)
    found = {
        g: re.search(re.escape(EN[f"grade.{g}"]) + r" (\d+)", line) for g in (*_GRADES, "manual")
    }
    return {g: int(m.group(1)) for g, m in found.items() if m}


def _model_sum(text: str) -> int:
    counts = _counters(text)
    return sum(counts.get(g, 0) for g in _GRADES)


def _findings_part(text: str) -> str:
    return text.split(EN["findings.title"], 1)[1]


def _screen(app: Any) -> str:
    return screen_text(app)


def _graded_shown(app: PatrolApp) -> int:
    match = _GRADED.search(_screen(app))
    assert match, _screen(app)
    return int(match.group(1))


def _log_tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.exists() else ""


def test_screen_drives_a_real_recorder_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / "outbox.sqlite3"
    sock = socket_path_for(data_dir)
    log = tmp_path / "run.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [EXE, "run", "--headless", "--config", str(_config(tmp_path, data_dir))],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: sock.exists() or proc.poll() is not None, 60.0)
        assert proc.poll() is None, _log_tail(log)
        # What `roadpatrol tui --data-dir DIR` attaches with; no recorder in this process.
        with RemoteRecorder(sock).connect(timeout_s=10.0) as remote:
            asyncio.run(_drive_the_screen(create_app(remote, lang="en", refresh_hz=8.0), db))
        assert proc.poll() is None, _log_tail(log)

        # Leaving the screen left recording alone: the outbox grows and the socket answers.
        stored = len(_outbox_rows(db))
        assert wait_until(lambda: len(_outbox_rows(db)) >= stored + 2, 30.0), _log_tail(log)
        with RemoteRecorder(sock).connect(timeout_s=10.0) as again:
            frames = again.status().camera.frames
            assert again.status().recording
            assert not again.status().model.paused
            assert wait_until(lambda: again.status().camera.frames >= frames + 4, 10.0)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, _log_tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def _drive_the_screen(app: PatrolApp, db: Path) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        # Recording, this vehicle, and the replayed drive's GPS fix, all from the process.
        def shows_the_drive() -> bool:
            text = _screen(app)
            return (
                EN["state.recording"] in text
                and VEHICLE in text
                and EN["gps.fix.3"] in text
                and "9 sats" in text
                and _DEMO_POSITION.search(text) is not None
            )

        assert await pilot_wait(pilot, shows_the_drive, 60.0), _screen(app)
        assert EN["alert.recorder_unreachable"][:20] not in _screen(app)

        # Findings appear and the counters move while the process grades.
        assert await pilot_wait(
            pilot,
            lambda: EN["findings.none"] not in _screen(app) and _model_sum(_screen(app)),
            60.0,
        ), _screen(app)
        first = _model_sum(_screen(app))
        assert await pilot_wait(pilot, lambda: _model_sum(_screen(app)) > first, 60.0)
        text = _screen(app)
        shown, rows = _model_sum(text), _outbox_rows(db)
        # Written to disk first, shown second: every counted finding is in the outbox already.
        assert 0 < shown <= sum(1 for _, g, o in rows if o == "model" and g > 0)
        findings = _findings_part(text)
        on_disk = {_short(i) for i, _, _ in rows}
        shown_ids = set(re.findall(r"\b[0-9a-f]{8}\b", findings))
        assert shown_ids, findings
        assert shown_ids <= on_disk, (shown_ids - on_disk, findings)

        # `m` stores a manual finding in the process's outbox, and the screen lists it.
        assert not [r for r in _outbox_rows(db) if r[2] == "manual"]
        await pilot.press("m")
        await app.workers.wait_for_complete()
        assert await pilot_wait(
            pilot, lambda: any(o == "manual" for _, _, o in _outbox_rows(db)), 10.0
        )
        manual = [i for i, _, o in _outbox_rows(db) if o == "manual"]
        assert len(manual) == 1
        assert await pilot_wait(
            pilot, lambda: _short(manual[0]) in _findings_part(_screen(app)), 5.0
        ), _screen(app)
        assert EN["grade.manual"] in _findings_part(_screen(app))
        assert _counters(_screen(app)).get("manual") == 1

        # `p` pauses grading in the process: the screen says so and `graded` stands still
        # while the camera keeps delivering frames.
        assert await pilot_wait(pilot, lambda: _graded_shown(app) >= 2, 30.0)
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert await pilot_wait(pilot, lambda: EN["state.paused"] in _screen(app), 5.0)
        assert EN["keys.resume"] in _screen(app)
        paused_at = _graded_shown(app)
        frames = app.last_status.camera.frames
        highest = paused_at

        def ten_more_frames() -> bool:
            nonlocal highest
            highest = max(highest, _graded_shown(app))
            return app.last_status.camera.frames >= frames + 10

        assert await pilot_wait(pilot, ten_more_frames, 30.0)
        assert highest <= paused_at + 1, (paused_at, highest)  # one may have been in flight
        assert EN["state.paused"] in _screen(app)

        # `p` again resumes: the screen says recording and grading goes on.
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert await pilot_wait(pilot, lambda: EN["state.recording"] in _screen(app), 5.0)
        assert EN["keys.pause"] in _screen(app)
        assert await pilot_wait(pilot, lambda: _graded_shown(app) >= highest + 2, 30.0)

        await pilot.press("q")
    assert app.return_code == 0
