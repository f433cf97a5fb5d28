"""GNS and GLL: the position sentences beyond RMC and GGA.

GNS is GGA for several constellations at once (multi-GNSS receivers, BeiDou's and
Galileo's talkers); GLL is position and time of day only (Garmin, Magellan and most
receivers in NMEA 2.x mode). Some receivers put the epoch's position only in one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.gps.nmea import (
    Sentence,
    TimeOfDay,
    _field,
    decode_gga_layout,
    decode_lat_lon,
    decode_time,
)


@dataclass(frozen=True, slots=True)
class Gns:
    """GNS: GGA's content for several constellations, one mode letter per constellation."""

    time: TimeOfDay | None
    valid: bool
    lat_deg: float | None
    lon_deg: float | None
    faa_mode: str  # the best of the constellations' letters ("" when none has a fix)
    sats_used: int | None
    hdop: float | None
    alt_msl_m: float | None


@dataclass(frozen=True, slots=True)
class Gll:
    """GLL: position and time of day only."""

    time: TimeOfDay | None
    valid: bool
    lat_deg: float | None
    lon_deg: float | None


# A GNS mode letter per constellation; the first of these present stands for the fix.
_GNS_FIX_LETTERS = "RFDPAEMS"


def decode_gns(s: Sentence) -> Gns:
    f = s.fields
    letters = _field(f, 5)  # letters outside the list (NMEA 4.11 adds some) are no fix
    best = next((c for c in _GNS_FIX_LETTERS if c in letters), "")
    lat, lon = decode_lat_lon(f, 1) if best else (None, None)
    common = decode_gga_layout(f)
    return Gns(
        time=common.time,
        valid=lat is not None,
        lat_deg=lat,
        lon_deg=lon,
        faa_mode=best,
        sats_used=common.sats_used,
        hdop=common.hdop,
        alt_msl_m=common.alt_msl_m,
    )


def decode_gll(s: Sentence) -> Gll:
    f = s.fields
    # NMEA 2.3 added the mode letter after the status; older receivers send only A/V.
    valid = _field(f, 5) == "A" and _field(f, 6)[:1] != "N"
    lat, lon = decode_lat_lon(f, 0) if valid else (None, None)
    return Gll(time=decode_time(_field(f, 4)), valid=lat is not None, lat_deg=lat, lon_deg=lon)
