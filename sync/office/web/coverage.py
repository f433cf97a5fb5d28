"""Patrol tracks as lines and what they covered: km driven and, with a road network loaded
(``--roads F``, GeoJSON LineStrings), the share of the road length driven.

A vehicle's line breaks at a new UTC day, a gap over ``GAP_S`` or a jump over ``JUMP_M`` (a
lost fix is not a drive across the city). A road is *driven* where a track passes within
``NEAR_M``: roads are sampled every ``STEP_M`` and each sample looked up in a grid of the
tracks, densified to the same step.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.office.store import EARTH_RADIUS_M, distance_m

GAP_S = 120.0
JUMP_M = 500.0
NEAR_M = 20.0
STEP_M = 5.0
_CELL_DEG = 0.0005  # about 55 m north-south: a sample's neighbours are in the 3×3 cells


class RoadsError(ValueError):
    """A road network file that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class Coverage:
    driven_km: float
    road_km: float | None  # None without a road network
    road_share: float | None  # 0..1 of the road length driven


def track_lines(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ordered track points (vehicle, then time) as lines: vehicle, day, coordinates, km."""
    lines: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for p in points:
        if prev is None or _breaks(prev, p):
            lines.append({"vehicle_id": p["vehicle_id"], "day": p["t_utc"][:10],
                          "coords": [], "km": 0.0})  # fmt: skip
        elif prev is not None:
            lines[-1]["km"] += distance_m(prev["lat_deg"], prev["lon_deg"],
                                          p["lat_deg"], p["lon_deg"]) / 1000  # fmt: skip
        lines[-1]["coords"].append((p["lat_deg"], p["lon_deg"]))
        prev = p
    return lines


def _breaks(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["vehicle_id"] != b["vehicle_id"] or a["t_utc"][:10] != b["t_utc"][:10]:
        return True
    gap_s = (_time(b["t_utc"]) - _time(a["t_utc"])).total_seconds()
    far = distance_m(a["lat_deg"], a["lon_deg"], b["lat_deg"], b["lon_deg"]) > JUMP_M
    return gap_s > GAP_S or far


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def tracks_geojson(lines: list[dict[str, Any]]) -> dict[str, Any]:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[x, y] for y, x in ln["coords"]]},
            "properties": {"vehicle_id": ln["vehicle_id"], "day": ln["day"],
                           "km": round(ln["km"], 3)},
        }
        for ln in lines
        if len(ln["coords"]) >= 2
    ]  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def load_roads(path: Path) -> list[list[tuple[float, float]]]:
    """The road network's polylines as (lat, lon) lists."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        features = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
        lines = []
        for i, feat in enumerate(features):
            geom = feat.get("geometry") or {}
            kind, coords = str(geom.get("type")), geom.get("coordinates") or []
            parts: list[Any] = {"LineString": [coords], "MultiLineString": coords}.get(kind, [])
            for part in parts or []:
                lines.append([(float(lat), float(lon)) for lon, lat, *_ in part])
            if not parts:
                raise RoadsError(f"{path}: feature {i}: not a LineString or MultiLineString")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, RoadsError):
            raise
        raise RoadsError(f"{path}: not a GeoJSON road network: {exc}") from None
    return lines


def _densify(coords: list[tuple[float, float]]) -> Iterable[tuple[float, float]]:
    """Points along the polyline at most STEP_M apart (the middles of equal pieces)."""
    for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(coords):
        steps = max(1, math.ceil(distance_m(a_lat, a_lon, b_lat, b_lon) / STEP_M))
        for k in range(steps):
            t = (k + 0.5) / steps
            yield a_lat + (b_lat - a_lat) * t, a_lon + (b_lon - a_lon) * t


Polylines = list[list[tuple[float, float]]]


def coverage(lines: list[dict[str, Any]], roads: Polylines | None) -> Coverage:
    driven_km = sum(ln["km"] for ln in lines)
    if roads is None:
        return Coverage(round(driven_km, 3), None, None)
    grid: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for ln in lines:
        for lat, lon in _densify(ln["coords"]) if len(ln["coords"]) > 1 else ln["coords"]:
            grid[(int(lat // _CELL_DEG), int(lon // _CELL_DEG))].append((lat, lon))
    total_m = near_m = 0.0
    for road in roads:
        for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(road):
            seg_m = distance_m(a_lat, a_lon, b_lat, b_lon)
            samples = list(_densify([(a_lat, a_lon), (b_lat, b_lon)]))
            total_m += seg_m
            near_m += seg_m * sum(_near(grid, s) for s in samples) / len(samples)
    share = near_m / total_m if total_m else None
    return Coverage(round(driven_km, 3), round(total_m / 1000, 3), share)


def _near(grid: dict[tuple[int, int], list[tuple[float, float]]], p: tuple[float, float]) -> bool:
    gy, gx = int(p[0] // _CELL_DEG), int(p[1] // _CELL_DEG)
    limit = math.degrees(NEAR_M / EARTH_RADIUS_M)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            for q in grid.get((gy + dy, gx + dx), ()):
                if abs(q[0] - p[0]) <= limit and distance_m(p[0], p[1], q[0], q[1]) <= NEAR_M:
                    return True
    return False
