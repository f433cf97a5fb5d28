"""The screen on the real pipeline: the demo drive's frames graded by the shipped model."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import Outbox
from tui.app import create_app
from tui.i18n import CATALOGUE

from support.tui_screen import pilot_wait, screen_text

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EN, JA = CATALOGUE["en"], CATALOGUE["ja"]
_GRADE_KEYS = ("3", "2", "1")


def _counters_line(text: str) -> str:
    return next(
        line
        for line in text.splitlines()
        if EN["counts.no_damage"] in line or JA["counts.no_damage"] in line
    )


def _shown_counts(line: str, names: dict[str, str]) -> dict[str, int]:
    return {
        g: int(re.search(re.escape(names[g]) + r" (\d+)", line).group(1))  # type: ignore[union-attr]
        for g in _GRADE_KEYS
    }


def test_findings_appear_and_counters_move(demo_recorder: Any) -> None:
    asyncio.run(_findings_appear_and_counters_move(demo_recorder))


async def _findings_appear_and_counters_move(recorder: Any) -> None:
    app = create_app(recorder, lang="en")
    names = {g: EN[f"grade.{g}"] for g in _GRADE_KEYS}
    async with app.run_test(size=(100, 30)) as pilot:
        assert await pilot_wait(pilot, lambda: app.last_status.recent, 90.0), (
            "the demo drive produced no finding"
        )
        await pilot.pause(0.3)
        text = screen_text(app)
        assert EN["findings.none"] not in text
        newest = app.last_status.recent[0]
        newest_name = (
            EN[f"grade.{newest.grade}"] if newest.origin != "manual" else EN["grade.manual"]
        )
        findings_part = text.split(EN["findings.title"], 1)[1]
        assert newest_name in findings_part
        for code in newest.type_codes:
            assert code in findings_part
        first = _shown_counts(_counters_line(text), names)
        assert sum(first.values()) >= 1
        # Counters move as the drive goes on, and the screen keeps up with the recorder.
        assert await pilot_wait(
            pilot,
            lambda: (
                sum(int(app.last_status.findings_by_grade[g]) for g in _GRADE_KEYS)
                > sum(first.values())
            ),
            90.0,
        )
        await pilot.pause(0.5)
        later = _shown_counts(_counters_line(screen_text(app)), names)
        assert sum(later.values()) > sum(first.values())
        assert later == {g: app.last_status.findings_by_grade[g] for g in _GRADE_KEYS}


def test_m_stores_a_manual_finding(demo_recorder: Any, tmp_path: Path) -> None:
    marked_id = asyncio.run(_m_stores_a_manual_finding(demo_recorder))
    # Read the outbox beside the running recorder, as `sync drain` does: it is what the
    # office will get.
    with Outbox.open(tmp_path, image_cap_bytes=1 << 30, min_free_bytes=0) as outbox:
        pending = outbox.pending_findings(limit=10_000)
    manual = [p for p in pending if p.finding.get("origin") == "manual"]
    assert [p.finding_id for p in manual] == [marked_id]


async def _m_stores_a_manual_finding(recorder: Any) -> str:
    app = create_app(recorder, lang="ja")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await pilot_wait(pilot, lambda: app.last_status.camera.frames > 0, 30.0)
        await pilot.press("m")
        await app.workers.wait_for_complete()
        assert await pilot_wait(
            pilot, lambda: any(r.origin == "manual" for r in app.last_status.recent), 5.0
        )
        await pilot.pause(0.3)
        findings_part = screen_text(app).split(JA["findings.title"], 1)[1]
        assert JA["grade.manual"] in findings_part
        return next(r.id for r in app.last_status.recent if r.origin == "manual")


def test_p_stops_grading_and_says_so(demo_recorder: Any) -> None:
    asyncio.run(_p_stops_grading_and_says_so(demo_recorder))


async def _p_stops_grading_and_says_so(recorder: Any) -> None:
    app = create_app(recorder, lang="en")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await pilot_wait(pilot, lambda: recorder.status().model.graded >= 2, 60.0)
        assert EN["state.recording"] in screen_text(app)
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert await pilot_wait(pilot, lambda: EN["state.paused"] in screen_text(app), 3.0)
        assert EN["keys.resume"] in screen_text(app)
        graded = recorder.status().model.graded
        await pilot.pause(4.0)  # ~6 frames at the demo's 1.6 frames/s
        assert recorder.status().model.graded <= graded + 1  # one may have been in flight
        assert recorder.status().camera.frames > 0
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert await pilot_wait(pilot, lambda: EN["state.recording"] in screen_text(app), 3.0)
        assert await pilot_wait(pilot, lambda: recorder.status().model.graded > graded + 1, 20.0)


def test_l_changes_the_labels_on_the_live_screen(demo_recorder: Any) -> None:
    asyncio.run(_l_changes_the_labels(demo_recorder))


async def _l_changes_the_labels(recorder: Any) -> None:
    app = create_app(recorder, lang="en")
    labels = (
        "label.gps",
        "label.camera",
        "label.model",
        "label.outbox",
        "label.link",
        "label.disk",
        "findings.title",
        "counts.no_damage",
        "button.mark",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        before = screen_text(app)
        assert all(EN[k] in before for k in labels)
        await pilot.press("l")
        await pilot.pause(0.3)
        after = screen_text(app)
        assert all(JA[k] in after for k in labels), after
        assert not any(
            re.search(rf"\b{re.escape(EN[k])}\b", after) for k in labels if EN[k] != JA[k]
        )
