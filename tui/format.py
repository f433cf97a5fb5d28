"""Numbers as a driver reads them: short, rounded, in the screen's language."""

from __future__ import annotations

from datetime import datetime

from tui.i18n import Messages

_MB = 1_000_000
_GB = 1_000_000_000


def age(msgs: Messages, seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return msgs("unit.s", v=f"{seconds:.1f}")
    if seconds < 120:
        return msgs("unit.s", v=f"{seconds:.0f}")
    if seconds < 2 * 3600:
        return msgs("unit.min", v=f"{seconds / 60:.0f}")
    return msgs("unit.h", v=f"{seconds / 3600:.1f}")


def distance(msgs: Messages, metres: float | None) -> str:
    if metres is None:
        return "—"
    if metres < 1000:
        return msgs("unit.m", v=f"{max(metres, 0.0):.0f}")
    return msgs("unit.km", v=f"{metres / 1000:.1f}")


def size(msgs: Messages, n_bytes: int | None) -> str:
    if n_bytes is None:
        return msgs("disk.unknown")
    if n_bytes < _GB:
        return msgs("unit.mb", v=f"{n_bytes / _MB:.1f}")
    return msgs("unit.gb", v=f"{n_bytes / _GB:.1f}")


def speed(msgs: Messages, mps: float | None) -> str:
    return msgs("unit.km_h", v="—" if mps is None else f"{mps * 3.6:.0f}")


def position(lat_deg: float | None, lon_deg: float | None) -> str:
    if lat_deg is None or lon_deg is None:
        return "—"
    # Five decimals is about a metre: as precise as the receiver, short enough to read.
    return f"{lat_deg:.5f}, {lon_deg:.5f}"


def local_time(utc_iso: str | None, with_seconds: bool = True) -> str:
    """An ISO UTC time as the vehicle's local wall-clock time."""
    if not utc_iso:
        return "—"
    try:
        when = datetime.fromisoformat(utc_iso)
    except ValueError:
        return utc_iso[:8]
    if when.tzinfo is None:
        return when.strftime("%H:%M:%S" if with_seconds else "%H:%M")
    return when.astimezone().strftime("%H:%M:%S" if with_seconds else "%H:%M")


def short_id(finding_id: str | None) -> str:
    """The tail of a UUIDv7: its head is a timestamp shared by every finding of a drive."""
    if not finding_id:
        return "—"
    return finding_id.replace("-", "")[-8:]
