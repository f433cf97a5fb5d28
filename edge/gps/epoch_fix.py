"""One epoch's decoded sentences, and the Fix they make: position, mode and quality as
gpsd reports them (the assembling of bursts into epochs is in edge.gps.epoch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.gps.nmea import Gga, Gsa, Rmc, TimeOfDay, Vtg, Zda
from edge.gps.nmea_position import Gll, Gns
from edge.types import Fix, FixMode, FixQuality

POSITION_KINDS = frozenset({"RMC", "GGA", "GNS", "GLL"})

_GGA_QUALITY = {
    0: FixQuality.NONE,
    1: FixQuality.GPS,
    2: FixQuality.DGPS,
    3: FixQuality.PPS,
    4: FixQuality.RTK_FIXED,
    5: FixQuality.RTK_FLOAT,
    6: FixQuality.ESTIMATED,
    7: FixQuality.MANUAL,
    8: FixQuality.SIMULATED,
}
_FAA_QUALITY = {
    "A": FixQuality.GPS,
    "D": FixQuality.DGPS,
    "E": FixQuality.ESTIMATED,
    "F": FixQuality.RTK_FLOAT,
    "R": FixQuality.RTK_FIXED,
    "P": FixQuality.PPS,
    "M": FixQuality.MANUAL,
    "S": FixQuality.SIMULATED,
    "N": FixQuality.NONE,
}


Record = Rmc | Gga | Gns | Gll | Gsa | Vtg | Zda


@dataclass
class EpochSentences:
    tod: TimeOfDay | None
    mono_ns: int
    addresses: set[str] = field(default_factory=set)
    rmc: Rmc | None = None
    gga: Gga | None = None
    gns: Gns | None = None
    gll: Gll | None = None
    gsa: list[Gsa] = field(default_factory=list)
    vtg: Vtg | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    two_digit_date: tuple[int, int, int] | None = None
    full_date: tuple[int, int, int] | None = None

    @property
    def has_fix_sentence(self) -> bool:
        return any(r is not None for r in (self.rmc, self.gga, self.gns, self.gll))

    @property
    def position_addresses(self) -> frozenset[str]:
        return frozenset(a for a in self.addresses if a[-3:] in POSITION_KINDS)


def epoch_to_fix(e: EpochSentences, time_utc: datetime | None, previous_mode: FixMode) -> Fix:
    mode = _mode(e, previous_mode)
    has_position = mode >= FixMode.FIX_2D
    speed = e.rmc.speed_mps if e.rmc is not None else None
    track = e.rmc.track_deg if e.rmc is not None else None
    if e.vtg is not None and e.vtg.valid:
        speed = e.vtg.speed_mps if speed is None else speed
        track = e.vtg.track_deg if track is None else track
    # GGA first, GNS (its multi-constellation twin) where a receiver sends no GGA.
    fix_data = e.gga if e.gga is not None else e.gns
    gsa_hdop = next((g.hdop for g in e.gsa if g.hdop is not None), None)
    hdop = fix_data.hdop if fix_data is not None and fix_data.hdop is not None else gsa_hdop
    sats = fix_data.sats_used if fix_data is not None else None
    if sats is None and e.gsa:
        sats = sum(g.sats for g in e.gsa)
    return Fix(
        mono_ns=e.mono_ns,
        time_utc=time_utc,
        lat_deg=e.lat_deg if has_position else None,
        lon_deg=e.lon_deg if has_position else None,
        mode=mode,
        quality=_quality(e) if has_position else FixQuality.NONE,
        speed_mps=speed,
        track_deg=track,
        hdop=hdop,
        sats_used=sats,
        alt_msl_m=fix_data.alt_msl_m if fix_data is not None else None,
    )


def _says_no_fix(e: EpochSentences) -> bool:
    """A position sentence of the epoch that says the receiver has no fix."""
    return (
        (e.rmc is not None and not e.rmc.valid)
        or (e.gga is not None and not e.gga.quality)
        or (e.gns is not None and not e.gns.valid)
        or (e.gll is not None and not e.gll.valid)
    )


def _mode(e: EpochSentences, previous: FixMode) -> FixMode:
    """The fix mode, as gpsd reports it.

    GSA states it; a GGA or GNS with an altitude from four or more satellites is 3D even
    where the GSA says 2D (MediaTek chips do), as gpsd has it. An epoch with neither (RMC or
    GLL alone) keeps the mode of the fix before it: the receiver's dimension does not change
    between two sentences, and gpsd keeps it too.
    """
    if e.lat_deg is None or e.lon_deg is None or _says_no_fix(e):
        return FixMode.NO_FIX
    modes = [g.mode for g in e.gsa if g.mode is not None]
    fix_data = e.gga if e.gga is not None else e.gns
    if fix_data is not None:
        three_d = fix_data.alt_msl_m is not None and (fix_data.sats_used or 0) >= 4
        modes.append(FixMode.FIX_3D if three_d else FixMode.FIX_2D)
    if modes:
        return FixMode(max(modes))
    return max(previous, FixMode.FIX_2D)


def _quality(e: EpochSentences) -> FixQuality:
    if e.gga is not None and e.gga.quality is not None:
        return _GGA_QUALITY.get(e.gga.quality, FixQuality.GPS)
    for faa in (e.gns.faa_mode if e.gns else "", e.rmc.faa_mode if e.rmc else ""):
        if faa:
            return _FAA_QUALITY.get(faa, FixQuality.GPS)
    return FixQuality.GPS
