"""The driver's screen says when privacy is off, and why images are withheld (Textual pilot)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from edge.status import Alert, PrivacyStatus
from tui.app import create_app
from tui.i18n import CATALOGUE

from support.tui_screen import FixedControl, fixed_status, screen_text


async def _shown(status: object, lang: str) -> str:
    app = create_app(FixedControl(status), lang=lang)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        return screen_text(app)


def test_privacy_off_and_a_failed_anonymiser_with_its_reason_are_on_the_screen(
    utc_clock: None,
) -> None:
    off = replace(fixed_status(alerts=(Alert.PRIVACY_OFF,)), privacy=PrivacyStatus(enabled=False))
    for lang in ("en", "ja"):
        assert CATALOGUE[lang]["alert.privacy_off"][:20] in asyncio.run(_shown(off, lang))
    reason = "det.onnx: plate detector model file not found"
    failed = replace(
        fixed_status(alerts=(Alert.PRIVACY_FAILED,)),
        privacy=PrivacyStatus(error=reason, withheld=4),
    )
    text = asyncio.run(_shown(failed, "en"))
    assert CATALOGUE["en"]["alert.privacy_failed"][:30] in text
    assert reason in text
    assert CATALOGUE["en"]["alert.privacy_off"][:20] not in text
