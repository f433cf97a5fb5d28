"""The map's filter from a URL's query: the page and the API read the same parameters, so a
shared link shows the same selection.

``grade=3,2`` (office grade) ``type=D40`` ``state=unreviewed`` ``repair=new,scheduled``
``from=2024-05-01`` ``to=2024-05-31`` (whole days, UTC, both inclusive) ``vehicle=chiba-07``
``model=road-damage-1.1.0`` ``min_score=0.5`` ``bbox=west,south,east,north`` (degrees). Lists are
comma-separated or repeated; an empty value means no condition.
"""

from __future__ import annotations

import math
from datetime import timedelta

from starlette.datastructures import QueryParams

from edge.wire.ids import VEHICLE_ID_RE
from edge.wire.serialize import format_utc, parse_utc
from sync.office.console_db import (
    REPAIR_STATES,
    REVIEW_STATES,
)
from sync.office.console_map import MapFilter
from sync.office.export import parse_since
from sync.office.review import TYPE_CODES
from sync.office.store import MANUAL_TYPE

FILTER_KEYS = ("grade", "type", "state", "repair", "from", "to", "vehicle", "model", "min_score")


class FilterError(ValueError):
    """A query parameter that cannot be used; the message names it."""


def _list(query: QueryParams, key: str) -> tuple[str, ...]:
    items = [p.strip() for v in query.getlist(key) for p in v.split(",")]
    return tuple(dict.fromkeys(i for i in items if i))


def _choices(key: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise FilterError(f"{key}={bad[0]!r}: expected one of {', '.join(allowed)}")
    return values


def _day(key: str, text: str, *, end: bool) -> str:
    if not text:
        return ""
    try:
        start = parse_since(text)
    except ValueError:
        raise FilterError(f"{key}={text!r}: expected a date such as 2024-05-01") from None
    if not end or "T" in text:
        return start
    return format_utc(parse_utc(start, key) + timedelta(days=1))


def parse_filter(query: QueryParams) -> MapFilter:
    """A request's query parameters as a filter; FilterError names a bad one."""
    lists = {k: _list(query, k) for k in ("grade", "type", "state", "repair", "vehicle", "model")}
    grades = _choices("grade", lists["grade"], ("0", "1", "2", "3"))
    bad_vehicle = [v for v in lists["vehicle"] if not VEHICLE_ID_RE.match(v)]
    if bad_vehicle:
        raise FilterError(f"vehicle={bad_vehicle[0]!r}: not a vehicle id")
    min_score = None
    if query.get("min_score"):
        try:
            min_score = float(query["min_score"])
        except ValueError:
            raise FilterError(f"min_score={query['min_score']!r}: expected a number") from None
        if not 0 <= min_score <= 1:
            raise FilterError(f"min_score={min_score}: expected 0 to 1")
    return MapFilter(
        grades=tuple(int(g) for g in grades),
        types=_choices("type", lists["type"], (*TYPE_CODES, MANUAL_TYPE)),
        review_states=_choices("state", lists["state"], REVIEW_STATES),
        repair_states=_choices("repair", lists["repair"], REPAIR_STATES),
        date_from=_day("from", query.get("from", ""), end=False),
        date_to=_day("to", query.get("to", ""), end=True),
        vehicles=lists["vehicle"],
        models=lists["model"],
        min_score=min_score,
        bbox=_bbox(query.get("bbox", "")),
        received_after=_day("received_after", query.get("received_after", ""), end=False),
    )


def _bbox(text: str) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        west, south, east, north = (float(p) for p in text.split(","))
    except ValueError:
        raise FilterError(f"bbox={text!r}: expected west,south,east,north in degrees") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)) or south > north:
        raise FilterError(f"bbox={text!r}: expected west,south,east,north in degrees")
    return west, south, east, north
