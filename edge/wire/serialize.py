"""The JSON form of a Finding: what the outbox stores and sync wraps in its MQTT payload.

Times are ISO-8601 UTC with a 'Z' and microseconds, enums are strings, floats must be finite
(JSON has no NaN). ``finding_from_dict(finding_to_dict(f)) == f`` holds exactly.
Reading checks every field and names the one that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from edge.types import (
    ClockSource,
    Damage,
    Finding,
    FindingOrigin,
    FixMode,
    FixQuality,
    Position,
    PositionSource,
)

_E = TypeVar("_E", bound=Enum)


class FindingFormatError(ValueError):
    """A finding dict that does not have the expected shape; the message names the field."""


def format_utc(when: datetime) -> str:
    """``2024-05-01T03:07:19.250000Z``: always microseconds, so the text round-trips exactly."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when.isoformat()} has no time zone; expected UTC")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str, field: str = "time") -> datetime:
    """Parse an ISO-8601 time with a zone ('Z' or an offset) into an aware UTC datetime."""
    if not isinstance(text, str):
        raise FindingFormatError(f"{field}: expected an ISO-8601 string, got {text!r}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FindingFormatError(f"{field}: not an ISO-8601 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise FindingFormatError(f"{field}: time {text!r} has no zone; expected UTC with 'Z'")
    return parsed.astimezone(UTC)


def _finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{field}: {value} is not a finite number (JSON cannot carry it)")
    return value


def _opt_finite(value: float | None, field: str) -> float | None:
    return None if value is None else _finite(value, field)


def _fix_mode_name(mode: FixMode) -> str:
    return mode.name.lower()


def position_to_dict(p: Position) -> dict[str, Any]:
    return {
        "lat_deg": _finite(p.lat_deg, "position.lat_deg"),
        "lon_deg": _finite(p.lon_deg, "position.lon_deg"),
        "source": p.source.value,
        "fix_age_s": _finite(p.fix_age_s, "position.fix_age_s"),
        "fix_mode": _fix_mode_name(p.fix_mode),
        "fix_quality": p.fix_quality.value,
        "hdop": _opt_finite(p.hdop, "position.hdop"),
        "speed_mps": _opt_finite(p.speed_mps, "position.speed_mps"),
        "heading_deg": _opt_finite(p.heading_deg, "position.heading_deg"),
    }


def damage_to_dict(d: Damage, index: int = 0) -> dict[str, Any]:
    where = f"damages[{index}]"
    return {
        "type_code": d.type_code,
        "score": _finite(d.score, f"{where}.score"),
        "box_norm": [_finite(v, f"{where}.box_norm") for v in d.box_norm],
        "grade": d.grade,
    }


def finding_to_dict(f: Finding) -> dict[str, Any]:
    """A JSON-safe dict (only str, int, float, bool, None, list, dict)."""
    clock = {} if f.clock_source is None else {"clock_source": f.clock_source.value}
    return {
        "id": f.id,
        "vehicle_id": f.vehicle_id,
        "boot_id": f.boot_id,
        "seq": f.seq,
        "captured_at_utc": format_utc(f.captured_at_utc),
        "position": None if f.position is None else position_to_dict(f.position),
        "grade": f.grade,
        "damages": [damage_to_dict(d, i) for i, d in enumerate(f.damages)],
        "model_id": f.model_id,
        "origin": f.origin.value,
        "sightings": f.sightings,
        "distance_m": _opt_finite(f.distance_m, "distance_m"),
        **clock,  # absent for findings recorded before the clock was recorded
    }


# --- reading -----------------------------------------------------------------------------


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise FindingFormatError(f"{where or 'finding'}: expected an object, got {d!r}")
    try:
        return d[key]
    except KeyError:
        raise FindingFormatError(f"{where}{key}: missing") from None


def _str(d: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _get(d, key, where)
    if not isinstance(value, str):
        raise FindingFormatError(f"{where}{key}: expected a string, got {value!r}")
    return value


def _int(d: Mapping[str, Any], key: str, where: str = "") -> int:
    value = _get(d, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FindingFormatError(f"{where}{key}: expected an integer, got {value!r}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FindingFormatError(f"{field}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise FindingFormatError(f"{field}: {value!r} is not finite")
    return float(value)


def _float(d: Mapping[str, Any], key: str, where: str = "") -> float:
    return _number(_get(d, key, where), f"{where}{key}")


def _opt_float(d: Mapping[str, Any], key: str, where: str = "") -> float | None:
    value = _get(d, key, where)
    return None if value is None else _number(value, f"{where}{key}")


def _enum(cls: type[_E], value: Any, field: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise FindingFormatError(f"{field}: {value!r} is not one of {allowed}") from None


def _fix_mode(value: Any, field: str) -> FixMode:
    if isinstance(value, str) and value.upper() in FixMode.__members__:
        return FixMode[value.upper()]
    allowed = ", ".join(repr(_fix_mode_name(m)) for m in FixMode)
    raise FindingFormatError(f"{field}: {value!r} is not one of {allowed}")


def position_from_dict(d: Mapping[str, Any], where: str = "position.") -> Position:
    return Position(
        lat_deg=_float(d, "lat_deg", where),
        lon_deg=_float(d, "lon_deg", where),
        source=_enum(PositionSource, _get(d, "source", where), f"{where}source"),
        fix_age_s=_float(d, "fix_age_s", where),
        fix_mode=_fix_mode(_get(d, "fix_mode", where), f"{where}fix_mode"),
        fix_quality=_enum(FixQuality, _get(d, "fix_quality", where), f"{where}fix_quality"),
        hdop=_opt_float(d, "hdop", where),
        speed_mps=_opt_float(d, "speed_mps", where),
        heading_deg=_opt_float(d, "heading_deg", where),
    )


def damage_from_dict(d: Mapping[str, Any], where: str) -> Damage:
    box = _get(d, "box_norm", where)
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise FindingFormatError(f"{where}box_norm: expected 4 numbers, got {box!r}")
    x0, y0, x1, y1 = (_number(v, f"{where}box_norm") for v in box)
    return Damage(
        type_code=_str(d, "type_code", where),
        score=_float(d, "score", where),
        box_norm=(x0, y0, x1, y1),
        grade=_int(d, "grade", where),
    )


def finding_from_dict(d: Mapping[str, Any]) -> Finding:
    """The inverse of :func:`finding_to_dict`; raises FindingFormatError naming the bad field."""
    raw_position = _get(d, "position", "")
    raw_damages = _get(d, "damages", "")
    if not isinstance(raw_damages, list | tuple):
        raise FindingFormatError(f"damages: expected a list, got {raw_damages!r}")
    return Finding(
        id=_str(d, "id"),
        vehicle_id=_str(d, "vehicle_id"),
        boot_id=_str(d, "boot_id"),
        seq=_int(d, "seq"),
        captured_at_utc=parse_utc(_get(d, "captured_at_utc", ""), "captured_at_utc"),
        position=None if raw_position is None else position_from_dict(raw_position),
        grade=_int(d, "grade"),
        damages=tuple(damage_from_dict(x, f"damages[{i}].") for i, x in enumerate(raw_damages)),
        model_id=_str(d, "model_id"),
        origin=_enum(FindingOrigin, _get(d, "origin", ""), "origin"),
        sightings=_int(d, "sightings"),
        distance_m=_opt_float(d, "distance_m"),
        clock_source=(
            None
            if d.get("clock_source") is None
            else _enum(ClockSource, d["clock_source"], "clock_source")
        ),
    )
