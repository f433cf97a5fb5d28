"""Small-distance geodesy: a local east/north plane around a point, and great-circle distance.

Fixes one second apart are a few to a few dozen metres apart, so a plane tangent to the
sphere at one of them is exact to millimetres; it keeps interpolation simple and fast.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
_DEG = math.pi / 180.0


def to_local_m(
    lat0_deg: float, lon0_deg: float, lat_deg: float, lon_deg: float
) -> tuple[float, float]:
    """(east_m, north_m) of a point relative to (lat0, lon0)."""
    dlon = (lon_deg - lon0_deg + 540.0) % 360.0 - 180.0  # across the antimeridian too
    east = dlon * _DEG * EARTH_RADIUS_M * math.cos(lat0_deg * _DEG)
    north = (lat_deg - lat0_deg) * _DEG * EARTH_RADIUS_M
    return east, north


def from_local_m(
    lat0_deg: float, lon0_deg: float, east_m: float, north_m: float
) -> tuple[float, float]:
    """Inverse of ``to_local_m``: (lat_deg, lon_deg)."""
    lat = lat0_deg + north_m / EARTH_RADIUS_M / _DEG
    lon = lon0_deg + east_m / (EARTH_RADIUS_M * math.cos(lat0_deg * _DEG)) / _DEG
    lon = (lon + 540.0) % 360.0 - 180.0
    return lat, lon


def velocity_en(speed_mps: float, track_deg: float) -> tuple[float, float]:
    """(east, north) velocity from ground speed and true course."""
    rad = track_deg * _DEG
    return speed_mps * math.sin(rad), speed_mps * math.cos(rad)


def heading_deg(east: float, north: float) -> float:
    return math.degrees(math.atan2(east, north)) % 360.0


def distance_m(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = lat1_deg * _DEG, lat2_deg * _DEG
    dp = p2 - p1
    dl = (lon2_deg - lon1_deg) * _DEG
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def destination(
    lat_deg: float, lon_deg: float, bearing_deg: float, dist_m: float
) -> tuple[float, float]:
    """Point reached from (lat, lon) going ``dist_m`` along the great circle at ``bearing_deg``."""
    d = dist_m / EARTH_RADIUS_M
    b = bearing_deg * _DEG
    p1, l1 = lat_deg * _DEG, lon_deg * _DEG
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return p2 / _DEG, (l2 / _DEG + 540.0) % 360.0 - 180.0
