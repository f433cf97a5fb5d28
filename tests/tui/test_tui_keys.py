"""Keys and language on a fixed Status: what the crew presses reaches the recorder."""

from __future__ import annotations

import asyncio
import re

import pytest

from edge.status import Alert
from tui.app import create_app
from tui.i18n import CATALOGUE

from support.tui_screen import FixedControl, fixed_status, screen_text

_ASCII_WORD = re.compile(r"[A-Za-z]{3,}")


def _words(texts: object) -> set[str]:
    return {w.lower() for t in texts for w in _ASCII_WORD.findall(str(t))}  # type: ignore[attr-defined]


def _data_words() -> set[str]:
    st = fixed_status()
    return _words(
        [
            st.vehicle_id,
            st.model.name,
            st.camera.source,
            st.gps.quality,
            *(c for r in st.recent for c in r.type_codes),
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_l_switches_every_label(utc_clock: None, size: tuple[int, int]) -> None:
    asyncio.run(_test_l_switches_every_label(utc_clock, size))


async def _test_l_switches_every_label(utc_clock: None, size: tuple[int, int]) -> None:
    status = fixed_status(alerts=(Alert.NO_GPS_FIX, Alert.CAMERA_LOST, Alert.MODEL_REFUSED))
    app = create_app(FixedControl(status), lang="en")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        english = screen_text(app)
        await pilot.press("l")
        await pilot.pause()
        japanese = screen_text(app)
        await pilot.press("l")
        await pilot.pause()
        assert screen_text(app) == english

    # Every fixed label the English screen shows has its Japanese counterpart after `l`.
    shown = {k: v for k, v in CATALOGUE["en"].items() if "{" not in v and v in english}
    assert len(shown) >= 20
    for key in shown:
        assert CATALOGUE["ja"][key] in japanese, key
    # And no English word is left over, apart from data (vehicle, model) and the words that
    # the Japanese catalogue itself uses (GPS, HDOP, km/h, English on the language key).
    allowed = _words(CATALOGUE["ja"].values()) | _data_words()
    leftovers = _words([japanese]) - allowed
    assert leftovers == set(), leftovers
    assert len(_words([english]) - allowed) > 20


def test_m_and_the_button_mark_p_toggles_q_leaves() -> None:
    asyncio.run(_test_m_and_the_button_mark_p_toggles_q_leaves())


async def _test_m_and_the_button_mark_p_toggles_q_leaves() -> None:
    control = FixedControl(fixed_status())
    app = create_app(control, lang="en")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await app.workers.wait_for_complete()
        assert control.marks == 1
        await pilot.click("#mark")
        await app.workers.wait_for_complete()
        assert control.marks == 2
        await pilot.press("p")
        await app.workers.wait_for_complete()
        control.fixed = fixed_status(paused=True)
        await pilot.pause(0.4)
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert control.paused_calls == [True, False]  # p asks for the opposite of what is
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.slow
def test_screen_follows_the_status_at_its_refresh_rate() -> None:
    asyncio.run(_test_screen_follows_the_status_at_its_refresh_rate())


async def _test_screen_follows_the_status_at_its_refresh_rate() -> None:
    control = FixedControl(fixed_status(alerts=()))
    app = create_app(control, lang="ja", refresh_hz=10.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "⚠" not in screen_text(app)
        polls = app.polls
        control.fixed = fixed_status(alerts=(Alert.CLOCK_NOT_SET,))
        await pilot.pause(0.5)
        text = screen_text(app)
        assert CATALOGUE["ja"]["alert.clock_not_set"][:10] in text
        control.fixed = fixed_status(paused=True)
        await pilot.pause(0.3)
        assert CATALOGUE["ja"]["state.paused"][:6] in screen_text(app)
        await pilot.pause(1.0)
        assert 8 <= app.polls - polls <= 22  # ~10 Hz over 1.8 s, whatever the content
