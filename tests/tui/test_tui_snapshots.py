"""The main screen, pixel for pixel, from a fixed Status: both languages, small and large."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tui.app import create_app

from support.tui_screen import FixedControl, fixed_status


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_main_screen(
    snap_compare: Callable[..., bool], utc_clock: None, lang: str, size: tuple[int, int]
) -> None:
    app = create_app(FixedControl(fixed_status()), lang=lang)
    assert snap_compare(app, terminal_size=size)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_paused_screen(snap_compare: Callable[..., bool], utc_clock: None, lang: str) -> None:
    app = create_app(FixedControl(fixed_status(paused=True, alerts=())), lang=lang)
    assert snap_compare(app, terminal_size=(80, 24))
