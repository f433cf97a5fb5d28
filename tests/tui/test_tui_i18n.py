"""The message catalogue: complete in both languages, chosen by locale, aligned by cell width."""

from __future__ import annotations

import re
import string
import unicodedata
from pathlib import Path

import pytest

from edge.status import Alert
from edge.status_socket import RECORDER_UNREACHABLE
from tui import i18n
from tui.i18n import CATALOGUE, Messages, lang_from_environment, pad_cells, resolve_lang

TUI_SOURCES = ("tui/widgets.py", "tui/health.py", "tui/app.py", "tui/format.py")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert set(CATALOGUE["ja"]) == set(CATALOGUE["en"])
    for key, en in CATALOGUE["en"].items():
        assert _fields(CATALOGUE["ja"][key]) == _fields(en), key


def test_every_literal_key_in_the_screen_code_exists() -> None:
    root = Path(i18n.__file__).resolve().parents[1]
    used: set[str] = set()
    for rel in TUI_SOURCES:
        source = (root / rel).read_text(encoding="utf-8")
        used |= set(
            re.findall(r"""\b(?:m|msgs|self\.msgs)\(\s*"([a-z_]+\.[A-Za-z0-9_.]+)""", source)
        )
    assert len(used) > 30  # the pattern really finds the calls
    assert used - set(CATALOGUE["en"]) == set()


def test_every_alert_code_is_worded_in_both_languages() -> None:
    codes = [v for k, v in vars(Alert).items() if k.isupper()] + [RECORDER_UNREACHABLE]
    assert len(codes) >= 6
    for lang in ("ja", "en"):
        msgs = Messages(lang)
        for code in codes:
            text = msgs.alert(code)
            assert code not in text  # worded, not the fallback that shows the raw code
    assert "mystery_code" in Messages("ja").alert("mystery_code")


def test_grade_names_are_the_office_words() -> None:
    ja = Messages("ja")
    assert [ja.grade_name(g) for g in (3, 2, 1)] == ["緊急", "要補修", "経過観察"]
    assert ja.grade_name(2, origin="manual") == "手動"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "ja_JP.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": ""}, "ja"),
    ],
)
def test_language_follows_the_locale(env: dict[str, str], expected: str) -> None:
    assert lang_from_environment(env) == expected
    assert resolve_lang(None, env) == expected
    assert resolve_lang("auto", env) == expected


def test_explicit_language_wins_and_bad_names_are_refused() -> None:
    assert resolve_lang("en", {"LANG": "ja_JP.UTF-8"}) == "en"
    assert resolve_lang("JA", {"LANG": "C"}) == "ja"
    with pytest.raises(ValueError, match="'fr'"):
        resolve_lang("fr", {})


def _east_asian_cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@pytest.mark.parametrize("width", [6, 8, 10, 12])
def test_padding_counts_terminal_cells_not_characters(width: int) -> None:
    for text in ("緊急", "要補修", "経過観察", "Urgent", "Manual", "手動"):
        padded = pad_cells(text, width)
        assert _east_asian_cells(padded) == width
        assert _east_asian_cells(pad_cells(text, width, align="right")) == width
        if _east_asian_cells(text) <= width:
            assert padded.rstrip() == text
