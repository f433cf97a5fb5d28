"""`roadpatrol office serve --config F`: the console's TOML settings, validated strictly."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.config.loader import ConfigError, validation_problems

GSI_TILES_URL = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
GSI_ATTRIBUTION = (
    '<a href="https://maps.gsi.go.jp/development/ichiran.html" target="_blank">地理院タイル</a>'
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MapSettings(_Section):
    tiles_url: str = Field(
        GSI_TILES_URL,
        description="XYZ tile URL template ({z}/{x}/{y}); empty: no tiles, a plain background.",
    )
    tiles_attribution: str = Field(
        GSI_ATTRIBUTION, description="Attribution shown on the map for the tiles (HTML)."
    )
    max_zoom: int = Field(18, ge=1, le=22, description="Highest zoom level the tiles offer.")
    center_lat_deg: float = Field(35.6074, ge=-90, le=90, description="Map centre at start.")
    center_lon_deg: float = Field(140.1065, ge=-180, le=180, description="Map centre at start.")
    start_zoom: int = Field(13, ge=1, le=22, description="Zoom level at start.")
    poll_interval_s: float = Field(
        5.0, gt=0, description="How often an open page asks for new findings."
    )
    cluster_above: int = Field(
        3000, ge=1, description="More findings than this in view: the server groups them."
    )


class SecuritySettings(_Section):
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set behind a TLS proxy)."
    )
    session_max_age_s: int = Field(8 * 3600, ge=60, description="A login lasts this long.")
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords in a row before a name is locked out for a while."
    )
    login_lockout_s: float = Field(
        300.0, gt=0, description="How long a locked-out name (and client address) must wait."
    )


class ConsoleConfig(_Section):
    map: MapSettings = Field(default_factory=MapSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    site_radius_m: float = Field(
        5.0, gt=0, description="A corrected type joins a site this close (as `office receive`)."
    )


def load_console_config(path: Path | None) -> ConsoleConfig:
    """The settings in ``path`` (defaults when None); ConfigError names field and line."""
    if path is None:
        return ConsoleConfig()
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read it: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from exc
    try:
        return ConsoleConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, validation_problems(exc, text)) from exc
