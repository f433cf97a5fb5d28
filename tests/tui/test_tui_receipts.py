"""The driver's screen shows what waits for the office's receipt, and says when the office has
confirmed nothing for long (Textual's pilot on a fixed Status)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from edge.status import Alert, OutboxStatus, Status
from tui.app import create_app

from support.tui_screen import FixedControl, fixed_status, pilot_wait, screen_text


def _status(*, silent_s: float | None, alerts: tuple[str, ...]) -> Status:
    base = fixed_status(alerts=alerts)
    outbox = OutboxStatus(
        pending=2,
        pending_bytes=40_000,
        oldest_age_s=30,
        stored=30,
        disk_free_bytes=12_300_000_000,
        awaiting_receipt=17,
        awaiting_receipt_age_s=600,
        office_silent_s=silent_s,
    )
    return replace(base, outbox=outbox)


async def _screen(status: Status, lang: str) -> str:
    app = create_app(FixedControl(status), lang=lang)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        return screen_text(app)


@pytest.mark.parametrize(
    ("lang", "awaiting", "alert"),
    [
        (
            "en",
            "17 awaiting office receipt (10 min)",
            "THE OFFICE HAS NOT CONFIRMED ANYTHING FOR 2.0 h",
        ),
        ("ja", "事務所確認待ち17件(10分)", "事務所から2.0時間受信確認がありません"),
    ],
)
def test_awaiting_receipts_and_a_silent_office_are_on_the_screen(
    utc_clock: None, lang: str, awaiting: str, alert: str
) -> None:
    silent = _status(silent_s=7200, alerts=(Alert.OFFICE_SILENT,))
    text = asyncio.run(_screen(silent, lang))
    assert awaiting in text
    assert alert in text.replace("\n", "").replace(" ", "") or alert in text
    quiet = _status(silent_s=60, alerts=())
    text = asyncio.run(_screen(quiet, lang))
    assert awaiting in text
    assert alert not in text


def test_the_awaiting_line_appears_and_goes_as_receipts_come(utc_clock: None) -> None:
    asyncio.run(_appears_and_goes())


async def _appears_and_goes() -> None:
    none_waiting = replace(_status(silent_s=None, alerts=()), outbox=OutboxStatus(pending=2))
    control = FixedControl(none_waiting)
    app = create_app(control, lang="en")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "awaiting office receipt" not in screen_text(app)
        disk_row = _row_of(screen_text(app), "Disk")
        control.fixed = _status(silent_s=60, alerts=())
        assert await pilot_wait(pilot, lambda: "17 awaiting" in screen_text(app), 10)
        # The grid grew by the line: nothing below it is cut off.
        assert _row_of(screen_text(app), "Disk") == disk_row + 1
        assert "Latest findings" in screen_text(app)
        control.fixed = none_waiting
        assert await pilot_wait(pilot, lambda: "awaiting" not in screen_text(app), 10)
        assert _row_of(screen_text(app), "Disk") == disk_row


def _row_of(text: str, label: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if f" {label} " in line)
