"""`office serve --config`: the console's settings, strictly validated, GSI tiles by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config.loader import ConfigError
from sync.office.web.config import GSI_TILES_URL, load_console_config


def test_defaults_are_the_gsi_tiles_with_their_attribution() -> None:
    cfg = load_console_config(None)
    assert cfg.map.tiles_url == "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
    assert cfg.map.tiles_url == GSI_TILES_URL
    assert "地理院タイル" in cfg.map.tiles_attribution
    assert cfg.security.login_max_failures == 5 and not cfg.security.cookie_secure


@pytest.mark.parametrize(("text", "problem"), [
    ('[map]\ntiles_url = ""\nzoom = 3\n', "line 3: map.zoom: unknown key"),
    ('[map]\npoll_interval_s = "5"\n', "line 2: map.poll_interval_s"),
    ("[security]\nlogin_max_failures = 0\n", "line 2: security.login_max_failures"),
    ("[security\n", "not valid TOML"),
    ("site_radius_m = -1.0\n", "line 1: site_radius_m"),
])  # fmt: skip
def test_bad_settings_name_field_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "console.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_console_config(path)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_console_config(tmp_path / "nope.toml")
