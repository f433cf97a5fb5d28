"""Recent fixes, and where the vehicle was at any moment between (or just after) them.

A frame's position is interpolated between the fix before and the fix after its timestamp:
at 60 km/h and one fix per second, taking the nearest fix instead is off by up to 8 m. Where
both fixes report speed and course, the interpolation is a cubic Hermite curve that leaves
each fix in its reported direction, so it follows a bend instead of cutting the chord.
When a frame is newer than the last fix (fixes arrive a little late), the position is
projected from the last fix by speed and course, for at most ``max_dead_reckoning_s``.
Beyond that the frame is ungeotagged: a wrong position is worse than none.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass, replace

from edge.gps.geo import distance_m, from_local_m, heading_deg, to_local_m, velocity_en
from edge.types import Fix, Position, PositionSource

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class _Sample:
    fix: Fix  # always has a position
    odometer_m: float  # metres driven up to this fix


class FixHistory:
    """Thread-safe bounded ring of recent fixes keyed by ``mono_ns``."""

    def __init__(
        self,
        *,
        capacity: int = 600,
        max_dead_reckoning_s: float = 2.0,
        max_interpolation_gap_s: float = 5.0,
        standstill_speed_mps: float = 0.5,
    ) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self._capacity = capacity
        self._max_dr_ns = int(max_dead_reckoning_s * _NS)
        self._max_gap_ns = int(max_interpolation_gap_s * _NS)
        self._standstill_mps = standstill_speed_mps
        self._lock = threading.Lock()
        self._monos: list[int] = []
        self._samples: list[_Sample] = []
        self._latest: Fix | None = None
        self.fixes_added = 0
        self.out_of_order = 0  # fixes older than the newest one: dropped

    # ---- writing ----

    def add(self, fix: Fix) -> None:
        with self._lock:
            self.fixes_added += 1
            previous = self._latest
            refines = (
                previous is not None
                and fix.time_utc is not None
                and fix.time_utc == previous.time_utc
            )
            if refines and previous is not None:
                # Same receiver epoch reported again (gpsd does this): keep its arrival time.
                fix = replace(fix, mono_ns=previous.mono_ns)
            self._latest = fix
            if not fix.has_position:
                return
            if self._monos and fix.mono_ns <= self._monos[-1]:
                if refines and fix.mono_ns == self._monos[-1]:
                    self._monos.pop()
                    self._samples.pop()
                else:
                    self.out_of_order += 1
                    return
            odometer = 0.0
            if self._samples:
                last = self._samples[-1]
                odometer = last.odometer_m + self._travelled_m(last.fix, fix)
            self._monos.append(fix.mono_ns)
            self._samples.append(_Sample(fix, odometer))
            excess = len(self._monos) - self._capacity
            if excess > self._capacity // 4:
                del self._monos[:excess]
                del self._samples[:excess]

    def _travelled_m(self, a: Fix, b: Fix) -> float:
        assert a.lat_deg is not None and a.lon_deg is not None
        assert b.lat_deg is not None and b.lon_deg is not None
        if (
            a.speed_mps is not None
            and b.speed_mps is not None
            and max(a.speed_mps, b.speed_mps) < self._standstill_mps
        ):
            return 0.0  # standing still: position noise is not distance driven
        return distance_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)

    # ---- reading ----

    def latest(self) -> Fix | None:
        """The newest fix epoch, with or without a position."""
        with self._lock:
            return self._latest

    def latest_with_position(self) -> Fix | None:
        with self._lock:
            return self._samples[-1].fix if self._samples else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def position_at(self, mono_ns: int) -> Position | None:
        """Where the vehicle was at ``mono_ns``, or None when the fixes do not say."""
        with self._lock:
            i = bisect_right(self._monos, mono_ns)
            before = self._samples[i - 1].fix if i > 0 else None
            after = self._samples[i].fix if i < len(self._samples) else None
        if before is not None and before.mono_ns == mono_ns:
            return _at(before, mono_ns, PositionSource.INTERPOLATED)
        if (
            before is not None
            and after is not None
            and after.mono_ns - before.mono_ns <= self._max_gap_ns
        ):
            return _interpolate(before, after, mono_ns)
        if before is not None and mono_ns - before.mono_ns <= self._max_dr_ns:
            return _dead_reckon(before, mono_ns)
        if after is not None and after.mono_ns - mono_ns <= self._max_dr_ns:
            return _dead_reckon(after, mono_ns)
        return None

    def odometer_m_at(self, mono_ns: int) -> float:
        """Metres driven since the first fix, up to ``mono_ns`` (for distance-based sampling).

        Standing still adds nothing. Between fixes it grows linearly; after the last fix it
        grows with the last speed for at most ``max_dead_reckoning_s``.
        """
        with self._lock:
            if not self._samples:
                return 0.0
            i = bisect_right(self._monos, mono_ns)
            if i == 0:
                return self._samples[0].odometer_m
            a = self._samples[i - 1]
            if i == len(self._samples):
                speed = a.fix.speed_mps
                if speed is None or speed < self._standstill_mps:
                    return a.odometer_m
                ahead_ns = min(mono_ns - a.fix.mono_ns, self._max_dr_ns)
                return a.odometer_m + speed * ahead_ns / _NS
            b = self._samples[i]
            span = b.fix.mono_ns - a.fix.mono_ns
            if span > self._max_gap_ns:
                return a.odometer_m
            share = (mono_ns - a.fix.mono_ns) / span
            return a.odometer_m + (b.odometer_m - a.odometer_m) * share

    @property
    def odometer_m(self) -> float:
        with self._lock:
            return self._samples[-1].odometer_m if self._samples else 0.0


def _at(fix: Fix, mono_ns: int, source: PositionSource) -> Position:
    assert fix.lat_deg is not None and fix.lon_deg is not None
    return Position(
        lat_deg=fix.lat_deg,
        lon_deg=fix.lon_deg,
        source=source,
        fix_age_s=abs(mono_ns - fix.mono_ns) / _NS,
        fix_mode=fix.mode,
        fix_quality=fix.quality,
        hdop=fix.hdop,
        speed_mps=fix.speed_mps,
        heading_deg=fix.track_deg,
    )


def _dead_reckon(fix: Fix, mono_ns: int) -> Position:
    if fix.speed_mps is None or fix.track_deg is None:
        return _at(fix, mono_ns, PositionSource.NEAREST_FIX)
    assert fix.lat_deg is not None and fix.lon_deg is not None
    dt = (mono_ns - fix.mono_ns) / _NS  # negative: before the first fix
    ve, vn = velocity_en(fix.speed_mps, fix.track_deg)
    lat, lon = from_local_m(fix.lat_deg, fix.lon_deg, ve * dt, vn * dt)
    return replace(_at(fix, mono_ns, PositionSource.DEAD_RECKONING), lat_deg=lat, lon_deg=lon)


def _interpolate(a: Fix, b: Fix, mono_ns: int) -> Position:
    assert a.lat_deg is not None and a.lon_deg is not None
    assert b.lat_deg is not None and b.lon_deg is not None
    span_s = (b.mono_ns - a.mono_ns) / _NS
    s = (mono_ns - a.mono_ns) / (b.mono_ns - a.mono_ns)
    chord_e, chord_n = to_local_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
    east, north = s * chord_e, s * chord_n
    vel_e, vel_n = chord_e / span_s, chord_n / span_s
    tangents = _tangents(a, b, span_s, chord_e, chord_n)
    if tangents is not None:
        (ae, an), (be, bn) = tangents
        s2, s3 = s * s, s * s * s
        h10, h01, h11 = s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
        east = h10 * ae + h01 * chord_e + h11 * be
        north = h10 * an + h01 * chord_n + h11 * bn
        d10, d01, d11 = 3 * s2 - 4 * s + 1, -6 * s2 + 6 * s, 3 * s2 - 2 * s
        vel_e = (d10 * ae + d01 * chord_e + d11 * be) / span_s
        vel_n = (d10 * an + d01 * chord_n + d11 * bn) / span_s
    lat, lon = from_local_m(a.lat_deg, a.lon_deg, east, north)
    if a.speed_mps is not None and b.speed_mps is not None:
        speed: float | None = a.speed_mps + (b.speed_mps - a.speed_mps) * s
    else:
        speed = (vel_e * vel_e + vel_n * vel_n) ** 0.5
    moving = speed is not None and speed > 0.5
    nearer = a if s <= 0.5 else b
    hdops = [h for h in (a.hdop, b.hdop) if h is not None]
    return Position(
        lat_deg=lat,
        lon_deg=lon,
        source=PositionSource.INTERPOLATED,
        fix_age_s=min(mono_ns - a.mono_ns, b.mono_ns - mono_ns) / _NS,
        fix_mode=min(a.mode, b.mode),
        fix_quality=nearer.quality,
        hdop=max(hdops) if hdops else None,
        speed_mps=speed,
        heading_deg=heading_deg(vel_e, vel_n) if moving else nearer.track_deg,
    )


_Vec = tuple[float, float]


def _tangents(
    a: Fix, b: Fix, span_s: float, chord_e: float, chord_n: float
) -> tuple[_Vec, _Vec] | None:
    """Hermite tangents (velocity × span) at both fixes, or None to interpolate linearly.

    Reported velocities that disagree with where the vehicle actually went (a stale course
    at walking speed, a receiver glitch) would bend the curve the wrong way; then the
    straight chord is the safer guess.
    """
    if a.speed_mps is None or a.track_deg is None or b.speed_mps is None or b.track_deg is None:
        return None
    ae, an = velocity_en(a.speed_mps, a.track_deg)
    be, bn = velocity_en(b.speed_mps, b.track_deg)
    mean_e, mean_n = (ae + be) / 2 * span_s, (an + bn) / 2 * span_s
    chord = (chord_e * chord_e + chord_n * chord_n) ** 0.5
    mismatch = ((mean_e - chord_e) ** 2 + (mean_n - chord_n) ** 2) ** 0.5
    if mismatch > max(3.0, 0.3 * chord):
        return None
    return (ae * span_s, an * span_s), (be * span_s, bn * span_s)
