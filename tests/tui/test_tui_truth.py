"""The screen tells the truth: the end of a replay is not a hardware fault, frozen values of an
unreachable recorder are greyed with their age, the link says why it is down, and the
findings' distance column says what it holds."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge.config.loader import demo_config
from edge.recording.recorder import Recorder
from edge.status import LinkStatus
from edge.status_socket import RemoteRecorder, StatusServer, socket_path_for
from tui.app import PatrolApp, create_app
from tui.i18n import CATALOGUE

from support.tui_screen import (
    FixedControl,
    ScreenProcess,
    fixed_status,
    pilot_wait,
    screen_text,
)

EN = CATALOGUE["en"]
EXE = str(Path(sys.executable).with_name("roadpatrol"))
_HARDWARE_ADVICE = ("NO GPS FIX", "antenna", "CAMERA LOST", "camera cable", "CLOCK NOT SET")


@pytest.fixture
def finished_replay(tmp_path: Path) -> Any:
    """The real recorder on the demo drive, played to its end (lockstep, as `demo --fast`)."""
    recorder = Recorder(demo_config(tmp_path / "demo", fast=True), lockstep=True).start()
    try:
        assert recorder.wait_ended(300), "the demo drive never ended"
        yield recorder
    finally:
        recorder.stop()


@pytest.mark.slow
def test_end_of_a_replay_says_finished_and_any_key_closes(finished_replay: Any) -> None:
    asyncio.run(_end_of_a_replay_says_finished_and_any_key_closes(finished_replay))


async def _end_of_a_replay_says_finished_and_any_key_closes(recorder: Any) -> None:
    app = create_app(recorder, lang="en")
    app.CLOSE_AFTER_FINISH_S = 600.0  # this test closes it with a key
    async with app.run_test(size=(120, 40)) as pilot:
        assert await pilot_wait(pilot, lambda: "DEMO DRIVE FINISHED" in screen_text(app), 10)
        text = screen_text(app)
        for advice in _HARDWARE_ADVICE:
            assert advice not in text, text
        assert EN["camera.finished"] in text and f"Camera   {EN['camera.lost']}" not in text
        assert app.return_code is None
        await pilot.press("x")  # not a key the screen knows: any key closes it
        assert await pilot_wait(pilot, lambda: app.return_code == 0, 10)


@pytest.mark.slow
def test_end_of_a_replay_closes_the_screen_by_itself(finished_replay: Any) -> None:
    asyncio.run(_end_of_a_replay_closes_the_screen_by_itself(finished_replay))


async def _end_of_a_replay_closes_the_screen_by_itself(recorder: Any) -> None:
    app = create_app(recorder, lang="ja")
    app.CLOSE_AFTER_FINISH_S = 2.0
    finished = CATALOGUE["ja"]["alert.replay_finished"][:6]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await pilot_wait(pilot, lambda: finished in screen_text(app), 10)
        assert await pilot_wait(pilot, lambda: app.return_code == 0, 30)


@pytest.mark.slow
def test_demo_closes_after_the_drive_and_reports_the_drive_time(tmp_path: Path) -> None:
    started = time.monotonic()
    screen = ScreenProcess(
        [], size=(120, 40), program=[EXE, "demo", "--fast", "--lang", "en", "--data-dir",
                                     str(tmp_path / "demo")],
    )  # fmt: skip
    try:
        # Nobody presses anything: the screen closes by itself after the drive.
        assert screen.proc.wait(timeout=300) == 0, screen.output[-3000:]
        wall_s = time.monotonic() - started
    finally:
        screen.close()
    output = screen.output
    assert "DEMO DRIVE FINISHED" in output
    match = re.search(r"demo drive: 120 frames, \d+ graded in ([\d.]+) s", output)
    assert match, output[-3000:]
    # The drive ended, then the screen stayed up CLOSE_AFTER_FINISH_S: not part of the drive.
    assert float(match.group(1)) <= wall_s - PatrolApp.CLOSE_AFTER_FINISH_S


GREY50 = (128, 128, 128)  # rich's grey50 as Textual renders it


def _colour(segment: Any) -> tuple[int, int, int] | None:
    if segment.style is None or segment.style.color is None:
        return None
    return tuple(segment.style.color.get_truecolor())  # type: ignore[return-value]


def _segments_with(app: PatrolApp, needle: str) -> list[Any]:
    return [
        seg
        for strip in app.screen._compositor.render_strips()
        for seg in strip
        if needle in seg.text
    ]


@pytest.mark.slow
def test_unreachable_recorder_greys_frozen_values_with_their_age(
    demo_recorder: Any, tmp_path: Path
) -> None:
    server = StatusServer(demo_recorder, socket_path_for(tmp_path))
    server.start()
    remote = RemoteRecorder(server.path, stale_after_s=0.5).connect(timeout_s=10)
    try:
        asyncio.run(_unreachable_greys_frozen_values(remote, server))
    finally:
        remote.close()
        server.stop()


async def _unreachable_greys_frozen_values(remote: RemoteRecorder, server: StatusServer) -> None:
    app = create_app(remote, lang="en", refresh_hz=10)
    async with app.run_test(size=(120, 40)) as pilot:
        live = re.compile(r"fix \d+\.\d s ago")
        assert await pilot_wait(pilot, lambda: live.search(screen_text(app)), 60), screen_text(app)
        assert "last heard from the recorder" not in screen_text(app)
        live_colour = _colour(next(s for s in _segments_with(app, " ago") if live.search(s.text)))
        assert live_colour != GREY50
        server.stop()  # the recorder is gone for the screen
        stale = re.compile(r"last heard from the recorder ([\d.]+) s ago")
        assert await pilot_wait(pilot, lambda: stale.search(screen_text(app)), 30), screen_text(app)
        first_age = float(stale.search(screen_text(app)).group(1))  # type: ignore[union-attr]
        assert "RECORDER NOT REACHABLE" in screen_text(app)
        fix = next(s for s in _segments_with(app, " ago") if live.search(s.text))
        assert _colour(fix) == GREY50  # frozen, and shown as such
        # The age moves on while the values stay frozen.
        assert await pilot_wait(
            pilot,
            lambda: float(stale.search(screen_text(app)).group(1)) > first_age,  # type: ignore[union-attr]
            30,
        )


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("cannot connect to 127.0.0.1:1: [Errno 111] Connection refused", "connection refused"),
        ("broker refused the connection: Not authorized (0x87)", "not authorised"),
        ("cannot connect to h:8883: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
         "failed", "TLS failure"),
    ],
)  # fmt: skip
def test_link_line_says_why_it_is_offline(utc_clock: None, error: str, shown: str) -> None:
    from sync.link_reason import link_reason

    status = fixed_status(alerts=())
    link = LinkStatus(
        enabled=True,
        connected=False,
        offline_since_utc="2024-05-14T19:55:00+00:00",
        last_error=error,
        last_reason=link_reason(error),
    )
    asyncio.run(_link_line(status.__class__(**{**_fields(status), "link": link}), shown))


def _fields(status: Any) -> dict[str, Any]:
    return {name: getattr(status, name) for name in status.__dataclass_fields__}


async def _link_line(status: Any, shown: str) -> None:
    app = create_app(FixedControl(status), lang="en")
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: no room for the raw error
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if "offline since 19:55" in line)
        assert shown in lines[at + 1], screen_text(app)  # the line under it: the reason


@pytest.mark.slow
def test_findings_distance_column_is_named_for_what_it_holds(utc_clock: None) -> None:
    asyncio.run(_findings_column())


async def _findings_column() -> None:
    app = create_app(FixedControl(fixed_status()), lang="en")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        header = next(line for line in screen_text(app).splitlines() if "Damage" in line)
        assert "Driven since" in header and not re.search(r"\bSince\b", header)
        # 23,456 m driven now, the newest finding at 20,000 + 11 · 150 m: 1.8 km ago.
        assert "1.8 km" in screen_text(app)
