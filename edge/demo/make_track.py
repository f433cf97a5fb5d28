"""Generate ``chiba_drive.nmea``, the demo drive's GPS track (deterministic: same bytes every run).

    python -m edge.demo.make_track [--out PATH]

The route starts in front of Chiba City Hall (35.6073 N, 140.1063 E), drives north-east on
the avenue that runs from the city hall towards JR Chiba Station, turns right (south-east)
into a cross street of the grid that is aligned with that avenue, and right again
(south-west). Street geometry is approximate (from general knowledge of the grid, not a
survey), which is all a demo needs: real-world scale, speeds and turns.

Cruise speed is 30 km/h (8.33 m/s), slowing to 15 km/h through the two right-angle turns
(radius 10 m). One GPRMC + GPGGA + GPGSA burst per second for 75 seconds.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from edge.gps.geo import from_local_m, heading_deg
from edge.gps.nmea import KNOTS_TO_MPS, format_sentence

START_LAT, START_LON = 35.6073, 140.1063
START_UTC = datetime(2024, 5, 14, 1, 0, 0, tzinfo=UTC)  # 10:00 JST, a weekday patrol
DURATION_S = 75
CRUISE_MPS = 30 / 3.6
TURN_MPS = 15 / 3.6
BRAKE_MPS2 = 1.2  # gentle braking and acceleration
TURN_RADIUS_M = 10.0
# (bearing in degrees, length in metres) of each street leg, corner to corner.
LEGS = ((42.0, 330.0), (132.0, 190.0), (222.0, 160.0))
OUT = Path(__file__).resolve().parent / "chiba_drive.nmea"

_STEP_M = 0.05
_SIM_DT_S = 0.001


def _path_points() -> list[tuple[float, float]]:
    """Dense (east, north) points along the legs, corners rounded with TURN_RADIUS_M arcs."""
    corners = [(0.0, 0.0)]
    for bearing, length in LEGS:
        e, n = corners[-1]
        rad = math.radians(bearing)
        corners.append((e + length * math.sin(rad), n + length * math.cos(rad)))
    points: list[tuple[float, float]] = []
    start = corners[0]
    for i in range(1, len(corners)):
        end = corners[i]
        trim_end = 0.0
        if i < len(corners) - 1:
            turn = math.radians((LEGS[i][0] - LEGS[i - 1][0] + 540) % 360 - 180)
            trim_end = TURN_RADIUS_M * math.tan(abs(turn) / 2)
        seg_e, seg_n = end[0] - start[0], end[1] - start[1]
        seg_len = math.hypot(seg_e, seg_n)
        steps = int((seg_len - trim_end) / _STEP_M)
        for k in range(steps + 1):
            f = k * _STEP_M / seg_len
            points.append((start[0] + seg_e * f, start[1] + seg_n * f))
        if i < len(corners) - 1:
            points.extend(_arc(points[-1], LEGS[i - 1][0], LEGS[i][0]))
            start = points[-1]
    return points


def _arc(
    p: tuple[float, float], from_bearing: float, to_bearing: float
) -> list[tuple[float, float]]:
    turn = (to_bearing - from_bearing + 540) % 360 - 180
    side = 1.0 if turn > 0 else -1.0  # right turn: centre to the right of travel
    rad = math.radians(from_bearing + side * 90)
    centre = (p[0] + TURN_RADIUS_M * math.sin(rad), p[1] + TURN_RADIUS_M * math.cos(rad))
    start_angle = math.atan2(p[0] - centre[0], p[1] - centre[1])
    sweep = math.radians(abs(turn))
    steps = max(1, int(TURN_RADIUS_M * sweep / _STEP_M))
    return [
        (
            centre[0] + TURN_RADIUS_M * math.sin(start_angle + side * sweep * k / steps),
            centre[1] + TURN_RADIUS_M * math.cos(start_angle + side * sweep * k / steps),
        )
        for k in range(1, steps + 1)
    ]


def _speed_limit(s: float, turn_marks: list[tuple[float, float]]) -> float:
    """Speed allowed at arc length ``s``: cruise, braking ahead of and accelerating after turns."""
    limit = CRUISE_MPS
    for begin, end in turn_marks:
        if begin <= s <= end:
            return TURN_MPS
        gap = begin - s if s < begin else s - end
        limit = min(limit, math.sqrt(TURN_MPS**2 + 2 * BRAKE_MPS2 * gap))
    return limit


def track() -> list[tuple[datetime, float, float, float, float]]:
    """(utc, lat, lon, speed_mps, track_deg) once per second."""
    pts = _path_points()
    cum = [0.0]
    headings = [LEGS[0][0]]
    for (e0, n0), (e1, n1) in pairwise(pts):
        cum.append(cum[-1] + math.hypot(e1 - e0, n1 - n0))
        headings.append(heading_deg(e1 - e0, n1 - n0))
    turns: list[tuple[float, float]] = []
    inside = False
    for i in range(1, len(headings)):
        bending = abs((headings[i] - headings[i - 1] + 540) % 360 - 180) > 1e-3
        if bending and not inside:
            turns.append((cum[i - 1], cum[i]))
        elif bending:
            turns[-1] = (turns[-1][0], cum[i])
        inside = bending
    out = []
    s, t, idx = 0.0, 0.0, 0
    for second in range(DURATION_S):
        while t < second - 1e-9:
            s += _speed_limit(s, turns) * _SIM_DT_S
            t += _SIM_DT_S
        while idx < len(cum) - 2 and cum[idx + 1] < s:
            idx += 1
        f = (s - cum[idx]) / max(cum[idx + 1] - cum[idx], 1e-9)
        east = pts[idx][0] + (pts[idx + 1][0] - pts[idx][0]) * f
        north = pts[idx][1] + (pts[idx + 1][1] - pts[idx][1]) * f
        lat, lon = from_local_m(START_LAT, START_LON, east, north)
        utc = START_UTC + timedelta(seconds=second)
        out.append((utc, lat, lon, _speed_limit(s, turns), headings[idx + 1]))
    return out


def _ddmm(value: float, width: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{width}d}{minutes:08.5f}"


def nmea_text() -> str:
    lines = [
        "# Name: roadpatrol demo drive near Chiba City Hall",
        "# Generator: python -m edge.demo.make_track (deterministic)",
        f"# Date: {START_UTC:%Y-%m-%d}",
        "# Location: Chiba, Japan, 35.6073N 140.1063E; streets approximate",
    ]
    for utc, lat, lon, speed, course in track():
        hhmmss = f"{utc:%H%M%S}.00"
        ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        latf, lonf = _ddmm(lat, 2), _ddmm(lon, 3)
        knots = speed / KNOTS_TO_MPS
        lines.append(
            format_sentence(
                f"GPRMC,{hhmmss},A,{latf},{ns},{lonf},{ew},{knots:.2f},{course:.1f},"
                f"{utc:%d%m%y},,,A"
            ).rstrip()
        )
        lines.append(
            format_sentence(
                f"GPGGA,{hhmmss},{latf},{ns},{lonf},{ew},1,09,0.9,4.6,M,36.9,M,,"
            ).rstrip()
        )
        lines.append(
            format_sentence("GPGSA,A,3,02,05,12,13,15,18,20,25,29,,,,1.6,0.9,1.3").rstrip()
        )
    return "\r\n".join(lines) + "\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args()
    args.out.write_bytes(nmea_text().encode("ascii"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
