"""Debian's chromium driven by Playwright (never Playwright's own browser download), headless,
with a fresh profile per test and nothing reaching outside the machine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    """A Playwright page in a fresh chromium profile; the browser speaks Japanese first."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed (apt-get install chromium): browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            locale="ja-JP", viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else context.new_page()
        # The page's own errors, shown with a failing test's output.
        page.on("console", lambda m: print(f"browser console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: print(f"browser page error: {e}"))
        page.on("response", lambda r: r.status >= 400 and print(f"browser got {r.status} {r.url}"))
        try:
            yield page
        finally:
            context.close()
