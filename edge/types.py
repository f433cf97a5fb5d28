"""Small frozen records passed between the recorder's stages.

Units live in field names so that nobody has to guess (``speed_mps``, ``mono_ns``).
Times: ``mono_ns`` is ``time.monotonic_ns()`` on this machine (for ordering and intervals),
``*_utc`` is a timezone-aware ``datetime`` in UTC (for people and the office).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

import numpy as np


class ClockSource(StrEnum):
    """Which clock gave a frame (and so a finding) its UTC time."""

    GPS = "gps"  # the monotonic clock plus its offset to the receiver's UTC
    SYSTEM = "system"  # the system clock, plausible (NTP, or an RTC that was set)
    UNSET = "unset"  # the system clock before any plausible date: not to be trusted


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One camera image. ``image`` is an H×W×3 uint8 array in OpenCV's BGR order."""

    seq: int
    mono_ns: int
    captured_at_utc: datetime
    image: np.ndarray = field(repr=False)
    source: str = ""
    clock_source: ClockSource = ClockSource.SYSTEM


class FixMode(IntEnum):
    """gpsd's TPV ``mode``: what kind of fix the receiver reports."""

    UNKNOWN = 0
    NO_FIX = 1
    FIX_2D = 2
    FIX_3D = 3


class FixQuality(StrEnum):
    """GGA fix quality, named."""

    NONE = "none"
    GPS = "gps"
    DGPS = "dgps"
    PPS = "pps"
    RTK_FIXED = "rtk_fixed"
    RTK_FLOAT = "rtk_float"
    ESTIMATED = "estimated"
    MANUAL = "manual"
    SIMULATED = "simulated"


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS fix epoch (RMC, GGA, GSA and VTG of the same time merged).

    ``mono_ns`` is when this machine received the epoch; ``time_utc`` is what the receiver
    said (None before the receiver knows the date/time).
    """

    mono_ns: int
    time_utc: datetime | None
    lat_deg: float | None
    lon_deg: float | None
    mode: FixMode
    quality: FixQuality = FixQuality.NONE
    speed_mps: float | None = None
    track_deg: float | None = None
    hdop: float | None = None
    sats_used: int | None = None
    alt_msl_m: float | None = None

    @property
    def has_position(self) -> bool:
        return self.mode >= FixMode.FIX_2D and self.lat_deg is not None and self.lon_deg is not None


class PositionSource(StrEnum):
    INTERPOLATED = "interpolated"  # between two fixes around the frame's time
    DEAD_RECKONING = "dead_reckoning"  # projected from the last fix by speed and track
    NEAREST_FIX = "nearest_fix"  # only one fix close enough in time, no motion known


@dataclass(frozen=True, slots=True)
class Position:
    """Where a frame was taken, and how much to trust it."""

    lat_deg: float
    lon_deg: float
    source: PositionSource
    fix_age_s: float  # time between the frame and the nearest fix used
    fix_mode: FixMode
    fix_quality: FixQuality
    hdop: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None


@dataclass(frozen=True, slots=True)
class Damage:
    """One damaged area the model found. ``box_norm`` is (x0, y0, x1, y1) in 0..1 of the frame."""

    type_code: str  # RDD code: D00, D10, D20, D40
    score: float
    box_norm: tuple[float, float, float, float]
    grade: int


@dataclass(frozen=True, slots=True, eq=False)
class GradedFrame:
    frame: Frame
    damages: tuple[Damage, ...]
    grade: int  # highest grade of its damages; 0 when none
    model_id: str  # "<name>-<version>"
    infer_ms: float


class FindingOrigin(StrEnum):
    MODEL = "model"
    MANUAL = "manual"  # marked by the crew with one key


@dataclass(frozen=True, slots=True)
class Finding:
    """What the outbox stores and the publisher sends; its JSON form is a public payload."""

    id: str  # UUIDv7 string: never changes, the office de-duplicates on it
    vehicle_id: str
    boot_id: str
    seq: int  # per boot, increasing: the office can see gaps
    captured_at_utc: datetime
    position: Position | None  # None: ungeotagged (kept anyway)
    grade: int
    damages: tuple[Damage, ...]
    model_id: str
    origin: FindingOrigin = FindingOrigin.MODEL
    sightings: int = 1  # consecutive frames merged into this finding
    distance_m: float | None = None  # odometer (metres driven this boot) at capture
    clock_source: ClockSource | None = None  # None: recorded before this was recorded
