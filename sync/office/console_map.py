"""The office console's map queries: the filter shared by the map, the queue, the API and the
exports, the server-side clusters, tracks and one finding's detail. SQL only (with
``console_db``), so that it moves with the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sync.office.review import OFFICE_GRADE_SQL
from sync.office.store import CURRENT_REVIEW_JOIN
from sync.office.store_api import OfficeStore

# The types the office acts on: the corrected ones after a correction, else the vehicle's.
OFFICE_TYPES_SQL = "COALESCE(CASE WHEN r.verdict = 'corrected' THEN r.type_codes END, f.type_codes)"


@dataclass(frozen=True, slots=True)
class MapFilter:
    """What the map, the queue and the API select; every field empty selects everything."""

    grades: tuple[int, ...] = ()  # office grades
    types: tuple[str, ...] = ()
    review_states: tuple[str, ...] = ()
    repair_states: tuple[str, ...] = ()
    date_from: str = ""  # stored UTC text form, inclusive
    date_to: str = ""  # exclusive
    vehicles: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    min_score: float | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north
    received_after: str = ""


def _in(column: str, values: tuple[Any, ...], params: list[Any]) -> str:
    params.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _period(flt: MapFilter, ends: str, starts: str, where: list[str], params: list[Any]) -> None:
    """The filter's period: what ``ends`` in it or later and ``starts`` before its end."""
    for column, op, value in ((ends, ">=", flt.date_from), (starts, "<", flt.date_to)):
        if value:
            where.append(f"{column} {op} ?")
            params.append(value)


def finding_where(store: OfficeStore, flt: MapFilter) -> tuple[str, list[Any]]:
    """SQL conditions over ``findings f`` with its current review ``r``, and their parameters."""
    where, params = ["1 = 1"], []  # type: tuple[list[str], list[Any]]
    if flt.grades:
        where.append(_in(OFFICE_GRADE_SQL, flt.grades, params))
    if flt.types:
        where.append("(" + " OR ".join(f"(',' || {OFFICE_TYPES_SQL} || ',') LIKE ?"
                                       for _ in flt.types) + ")")  # fmt: skip
        params.extend(f"%,{t},%" for t in flt.types)
    if flt.review_states:
        where.append(_in("COALESCE(r.verdict, 'unreviewed')", flt.review_states, params))
    if flt.repair_states:
        where.append(
            "EXISTS (SELECT 1 FROM site_findings sf LEFT JOIN repair_states rs "
            "ON rs.site_id = sf.site_id WHERE sf.finding_id = f.id AND "
            + _in("COALESCE(rs.state, 'new')", flt.repair_states, params) + ")"
        )
    _period(flt, "f.captured_at_utc", "f.captured_at_utc", where, params)
    if flt.received_after:
        where.append("f.received_at_utc > ?")
        params.append(flt.received_after)
    if flt.vehicles:
        where.append(_in("f.vehicle_id", flt.vehicles, params))
    if flt.models:
        where.append(_in("f.model_id", flt.models, params))
    if flt.min_score is not None:
        where.append(f"{store.max_damage_score('f.payload')} >= ?")
        params.append(flt.min_score)
    if flt.bbox is not None:
        west, south, east, north = flt.bbox
        where.append("f.lat_deg BETWEEN ? AND ? AND f.lon_deg BETWEEN ? AND ?")
        params.extend((south, north, west, east))
    return " AND ".join(where), params


def site_member_where(site_id: int) -> tuple[str, list[Any]]:
    """The findings of one site, as a condition for ``finding_rows``."""
    return "f.id IN (SELECT finding_id FROM site_findings WHERE site_id = ?)", [site_id]


def site_where(store: OfficeStore, flt: MapFilter) -> tuple[str, list[Any]]:
    """SQL conditions over ``sites s`` (grade and review state are filtered after the sites'
    reviews are worked out: see ``site_review``)."""
    where, params = ["1 = 1"], []  # type: tuple[list[str], list[Any]]
    if flt.types:
        where.append(_in("s.type_code", flt.types, params))
    if flt.repair_states:
        where.append(_in("COALESCE((SELECT state FROM repair_states WHERE site_id = s.id), "
                         "'new')", flt.repair_states, params))  # fmt: skip
    _period(flt, "s.last_seen_utc", "s.first_seen_utc", where, params)
    if flt.vehicles or flt.models:
        only = MapFilter(vehicles=flt.vehicles, models=flt.models)
        inner, inner_params = finding_where(store, only)
        where.append("EXISTS (SELECT 1 FROM site_findings sf JOIN findings f ON f.id = "
                     f"sf.finding_id WHERE sf.site_id = s.id AND {inner})")  # fmt: skip
        params.extend(inner_params)
    if flt.bbox is not None:
        west, south, east, north = flt.bbox
        where.append("s.lat_deg BETWEEN ? AND ? AND s.lon_deg BETWEEN ? AND ?")
        params.extend((south, north, west, east))
    return " AND ".join(where), params


# The office grade without the review join, for the clusters: a finding's newest review's grade
# when it changed it (corrected, not damage), else the vehicle's. Same value as OFFICE_GRADE_SQL.
_OFFICE_GRADE_LOOKUP_SQL = (
    "COALESCE((SELECT CASE verdict WHEN 'corrected' THEN grade WHEN 'not_damage' THEN 0 END "
    "FROM reviews WHERE finding_id = f.id ORDER BY id DESC LIMIT 1), f.grade)"
)


def cluster_findings(store: OfficeStore, flt: MapFilter, cell_deg: float) -> list[dict[str, Any]]:
    """Findings with a position grouped in a grid of ``cell_deg`` cells (the zoomed-out map):
    per cell its count, mean position and highest office grade.

    Without a filter on what reviews decide, the query reads only the covering map index and
    looks a finding's review up by index (faster than the general join, 100,000 findings in
    well under the 300 ms the map may take)."""
    where, params = finding_where(store, flt)
    needs_review = bool(flt.grades or flt.types or flt.review_states)
    grade_sql = OFFICE_GRADE_SQL if needs_review else _OFFICE_GRADE_LOOKUP_SQL
    rows = store.query(
        f"SELECT COUNT(*) AS n, AVG(f.lat_deg) AS lat_deg, AVG(f.lon_deg) AS lon_deg, "
        f"MAX({grade_sql}) AS max_grade FROM findings f "
        f"{CURRENT_REVIEW_JOIN if needs_review else ''} "
        f"WHERE f.lat_deg IS NOT NULL AND {where} "
        # One grouping key (row, column of the cell) sorts faster than two.
        f"GROUP BY {store.int_part('f.lat_deg / ?')} * 4000037 + "
        f"{store.int_part('f.lon_deg / ?')}",
        (*params, cell_deg, cell_deg),
    )
    return [dict(r) for r in rows]


def finding_detail(store: OfficeStore, finding_id: str) -> dict[str, Any] | None:
    """What the review queue shows of one finding beyond the export's columns."""
    rows = store.query(
        "SELECT f.payload, (SELECT group_concat(site_id) FROM site_findings "
        "WHERE finding_id = f.id) AS site_ids FROM findings f WHERE f.id = ?",
        (finding_id,),
    )
    if not rows:
        return None
    payload = json.loads(rows[0]["payload"])
    site_ids = [int(s) for s in (rows[0]["site_ids"] or "").split(",") if s]
    others = store.query(
        "SELECT DISTINCT f.id, f.captured_at_utc, f.vehicle_id, f.grade FROM site_findings sf "
        "JOIN findings f ON f.id = sf.finding_id WHERE sf.site_id IN "
        f"({','.join('?' * len(site_ids))}) AND f.id != ? ORDER BY f.captured_at_utc",
        (*site_ids, finding_id),
    )
    return {"damages": payload["damages"], "site_ids": site_ids,
            "other_sightings": [dict(r) for r in others]}  # fmt: skip


def track_points(store: OfficeStore, flt: MapFilter) -> list[dict[str, Any]]:
    """Timed track points in the filter's period and vehicles, by vehicle then time."""
    where, params = ["t_utc != ''"], []  # type: tuple[list[str], list[Any]]
    _period(flt, "t_utc", "t_utc", where, params)
    if flt.vehicles:
        where.append(_in("vehicle_id", flt.vehicles, params))
    rows = store.query(
        "SELECT vehicle_id, t_utc, lat_deg, lon_deg FROM track_points WHERE "
        f"{' AND '.join(where)} ORDER BY vehicle_id, t_utc",
        tuple(params),
    )
    return [dict(r) for r in rows]


def distinct_values(store: OfficeStore) -> dict[str, list[str]]:
    """The vehicles and model ids the filter offers."""
    q = store.query
    return {
        "vehicles": [r[0] for r in q("SELECT DISTINCT vehicle_id FROM findings ORDER BY 1")],
        "models": [r[0] for r in q("SELECT DISTINCT model_id FROM findings ORDER BY 1")],
    }


def check_readable(store: OfficeStore) -> None:
    """Raises one of DATABASE_ERRORS when the findings cannot be read (the health check)."""
    store.query("SELECT 1 FROM findings LIMIT 1")


def image_vehicle(store: OfficeStore, finding_id: str) -> str | None:
    """The vehicle whose stored image this finding's is; None without an image."""
    rows = store.query("SELECT vehicle_id FROM images WHERE finding_id = ?", (finding_id,))
    return str(rows[0]["vehicle_id"]) if rows else None


def finding_id_where(finding_id: str) -> tuple[str, list[Any]]:
    """One finding, as a condition for ``finding_rows``."""
    return "f.id = ?", [finding_id]


def latest_received(store: OfficeStore) -> str:
    return str(store.query("SELECT COALESCE(MAX(received_at_utc), '') FROM findings")[0][0])
