"""The office console's tables and queries: staff accounts, repair states, the audit trail, and
the filtered map data. All the console's SQL lives here, so that it moves with the store.

The tables are additive (still schema 1, like ``reviews``): ``CREATE ... IF NOT EXISTS`` when the
console opens a database, ignored by older software. A site without a ``repair_states`` row is
``new``. The review history per finding stays in ``reviews`` (the CLI's table); ``audit`` holds
the repair changes and the console's account events, one row per change, never updated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.serialize import format_utc
from sync.office.review import OFFICE_GRADE_SQL
from sync.office.store import CURRENT_REVIEW_JOIN, OfficeStore

CONSOLE_DDL = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS repair_states (
    site_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('new', 'confirmed', 'scheduled', 'repaired', 'closed')),
    assignee TEXT NOT NULL DEFAULT '',
    due_date TEXT NOT NULL DEFAULT '',
    repaired_at_utc TEXT NOT NULL DEFAULT '',  -- a later sighting reopens the site
    repaired_by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    reopened INTEGER NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL,
    updated_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    site_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,  -- JSON
    at_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_site ON audit (site_id, id);
-- The map's index: a bounding box reads it alone (it covers what clusters need).
CREATE INDEX IF NOT EXISTS findings_map ON findings (lat_deg, lon_deg, grade, id);
CREATE INDEX IF NOT EXISTS findings_received ON findings (received_at_utc);
"""
ROLES = ("viewer", "reviewer", "admin")
REPAIR_STATES = ("new", "confirmed", "scheduled", "repaired", "closed")
REVIEW_STATES = ("unreviewed", "confirmed", "corrected", "not_damage")
_SECRET_KEY = "console_session_secret"
# The types the office acts on: the corrected ones after a correction, else the vehicle's.
OFFICE_TYPES_SQL = "COALESCE(CASE WHEN r.verdict = 'corrected' THEN r.type_codes END, f.type_codes)"
_MAX_SCORE_SQL = (
    "(SELECT MAX(json_extract(d.value, '$.score')) FROM json_each(f.payload, '$.damages') d)"
)


def now_utc() -> str:
    return format_utc(datetime.now(UTC))


def ensure_console_tables(store: OfficeStore) -> None:
    """Create the console's tables and indexes where missing (idempotent)."""
    for statement in CONSOLE_DDL.split(";"):
        if statement.strip():
            store.execute(statement)


def session_secret(store: OfficeStore, fresh: str) -> str:
    """The cookie-signing secret kept in the database (``fresh`` the first time), so a restart
    keeps staff logged in and every console process on the file signs alike."""
    store.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (_SECRET_KEY, fresh))
    return str(store.query("SELECT value FROM meta WHERE key = ?", (_SECRET_KEY,))[0]["value"])


# --- accounts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    disabled: bool
    password_hash: str
    created_at_utc: str


def get_user(store: OfficeStore, name: str) -> User | None:
    rows = store.query("SELECT * FROM console_users WHERE name = ?", (name,))
    if not rows:
        return None
    r = rows[0]
    return User(r["name"], r["role"], bool(r["disabled"]), r["password_hash"], r["created_at_utc"])


def list_users(store: OfficeStore) -> list[User]:
    rows = store.query("SELECT name FROM console_users ORDER BY name")
    return [u for u in (get_user(store, r["name"]) for r in rows) if u is not None]


def insert_user(store: OfficeStore, name: str, role: str, password_hash: str, actor: str) -> None:
    with store.transaction():
        store.execute(
            "INSERT INTO console_users VALUES (?,?,?,0,?)", (name, role, password_hash, now_utc())
        )
        _audit(store, None, actor, "user_added", {"user": name, "role": role})


def set_user_disabled(store: OfficeStore, name: str, disabled: bool, actor: str) -> bool:
    with store.transaction():
        cur = store.execute(
            "UPDATE console_users SET disabled = ? WHERE name = ?", (int(disabled), name)
        )
        if cur.rowcount:
            action = "user_disabled" if disabled else "user_enabled"
            _audit(store, None, actor, action, {"user": name})
    return bool(cur.rowcount)


def set_password_hash(store: OfficeStore, name: str, password_hash: str) -> None:
    """Store a rehash (argon2 parameters raised since the account was made)."""
    with store.transaction():
        store.execute(
            "UPDATE console_users SET password_hash = ? WHERE name = ?", (password_hash, name)
        )


# --- repair states and audit --------------------------------------------------------------


def _audit(store: OfficeStore, site_id: int | None, actor: str, action: str, detail: Any) -> None:
    store.execute(
        "INSERT INTO audit (site_id, actor, action, detail, at_utc) VALUES (?,?,?,?,?)",
        (site_id, actor, action, json.dumps(detail, ensure_ascii=False), now_utc()),
    )


def repair_state(store: OfficeStore, site_id: int) -> dict[str, Any]:
    rows = store.query("SELECT * FROM repair_states WHERE site_id = ?", (site_id,))
    if rows:
        return dict(rows[0])
    return {"site_id": site_id, "state": "new", "assignee": "", "due_date": "",
            "repaired_at_utc": "", "repaired_by": "", "note": "", "reopened": 0,
            "updated_by": "", "updated_at_utc": ""}  # fmt: skip


def repair_states(store: OfficeStore) -> dict[int, dict[str, Any]]:
    return {r["site_id"]: dict(r) for r in store.query("SELECT * FROM repair_states")}


def write_repair_state(store: OfficeStore, row: dict[str, Any], actor: str, action: str) -> None:
    """Replace a site's repair state and record the change, in one transaction."""
    row = {**row, "updated_by": actor, "updated_at_utc": now_utc()}
    with store.transaction():
        store.execute(
            "INSERT OR REPLACE INTO repair_states (site_id, state, assignee, due_date, "
            "repaired_at_utc, repaired_by, note, reopened, updated_by, updated_at_utc) "
            "VALUES (:site_id, :state, :assignee, :due_date, :repaired_at_utc, :repaired_by, "
            ":note, :reopened, :updated_by, :updated_at_utc)",
            row,  # type: ignore[arg-type]
        )
        detail = {k: row[k] for k in ("state", "assignee", "due_date", "repaired_at_utc",
                                      "repaired_by", "note") if row[k] != ""}  # fmt: skip
        _audit(store, int(row["site_id"]), actor, action, detail)


def sightings_after_repair(store: OfficeStore) -> list[dict[str, Any]]:
    """Repaired or closed sites with a finding captured after the repair: each site once, with
    its newest such finding."""
    rows = store.query(
        "SELECT rs.site_id, f.id AS finding_id, MAX(f.captured_at_utc) AS captured_at_utc "
        "FROM repair_states rs JOIN site_findings sf ON sf.site_id = rs.site_id "
        "JOIN findings f ON f.id = sf.finding_id "
        "WHERE rs.state IN ('repaired', 'closed') AND f.captured_at_utc > rs.repaired_at_utc "
        "GROUP BY rs.site_id"
    )
    return [dict(r) for r in rows]


def audit_trail(store: OfficeStore, site_id: int) -> list[dict[str, Any]]:
    """The site's repair changes and the reviews of its findings, oldest first."""
    rows = store.query(
        "SELECT at_utc, actor, action, detail, NULL AS finding_id FROM audit WHERE site_id = ? "
        "UNION ALL SELECT r.reviewed_at_utc, r.reviewer, 'review', json_object('verdict', "
        "r.verdict, 'grade', r.grade, 'type_codes', r.type_codes, 'note', r.note), r.finding_id "
        "FROM reviews r JOIN site_findings sf ON sf.finding_id = r.finding_id "
        "WHERE sf.site_id = ? ORDER BY 1",
        (site_id, site_id),
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


def work_orders(store: OfficeStore) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT rs.site_id, s.type_code, s.lat_deg, s.lon_deg, s.max_grade, rs.state, "
        "rs.assignee, rs.due_date, rs.repaired_at_utc, rs.repaired_by, rs.note, rs.updated_by, "
        "rs.updated_at_utc FROM repair_states rs JOIN sites s ON s.id = rs.site_id "
        "WHERE rs.state IN ('scheduled', 'repaired', 'closed') ORDER BY rs.due_date, rs.site_id"
    )
    return [dict(r) for r in rows]


# --- the map's filter ---------------------------------------------------------------------


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


def finding_where(flt: MapFilter) -> tuple[str, list[Any]]:
    """SQL conditions over ``findings f`` with its current review ``r``, and their parameters."""
    where, params = ["1"], []  # type: tuple[list[str], list[Any]]
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
        where.append(f"{_MAX_SCORE_SQL} >= ?")
        params.append(flt.min_score)
    if flt.bbox is not None:
        west, south, east, north = flt.bbox
        where.append("f.lat_deg BETWEEN ? AND ? AND f.lon_deg BETWEEN ? AND ?")
        params.extend((south, north, west, east))
    return " AND ".join(where), params


def site_member_where(site_id: int) -> tuple[str, list[Any]]:
    """The findings of one site, as a condition for ``finding_rows``."""
    return "f.id IN (SELECT finding_id FROM site_findings WHERE site_id = ?)", [site_id]


def site_where(flt: MapFilter) -> tuple[str, list[Any]]:
    """SQL conditions over ``sites s`` (grade and review state are filtered after the sites'
    reviews are worked out: see ``site_review``)."""
    where, params = ["1"], []  # type: tuple[list[str], list[Any]]
    if flt.types:
        where.append(_in("s.type_code", flt.types, params))
    if flt.repair_states:
        where.append(_in("COALESCE((SELECT state FROM repair_states WHERE site_id = s.id), "
                         "'new')", flt.repair_states, params))  # fmt: skip
    _period(flt, "s.last_seen_utc", "s.first_seen_utc", where, params)
    if flt.vehicles or flt.models:
        inner, inner_params = finding_where(MapFilter(vehicles=flt.vehicles, models=flt.models))
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
    where, params = finding_where(flt)
    needs_review = bool(flt.grades or flt.types or flt.review_states)
    grade_sql = OFFICE_GRADE_SQL if needs_review else _OFFICE_GRADE_LOOKUP_SQL
    rows = store.query(
        f"SELECT COUNT(*) AS n, AVG(f.lat_deg) AS lat_deg, AVG(f.lon_deg) AS lon_deg, "
        f"MAX({grade_sql}) AS max_grade FROM findings f "
        f"{CURRENT_REVIEW_JOIN if needs_review else ''} "
        f"WHERE f.lat_deg IS NOT NULL AND {where} "
        # One grouping key (row, column of the cell) sorts faster than two.
        "GROUP BY CAST(f.lat_deg / ? AS INTEGER) * 4000037 + CAST(f.lon_deg / ? AS INTEGER)",
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
    """Raises sqlite3.Error when the findings cannot be read (the health check)."""
    store.query("SELECT 1 FROM findings LIMIT 1")


def image_vehicle(store: OfficeStore, finding_id: str) -> str | None:
    """The vehicle whose stored image this finding's is; None without an image."""
    rows = store.query("SELECT vehicle_id FROM images WHERE finding_id = ?", (finding_id,))
    return str(rows[0]["vehicle_id"]) if rows else None


def site_exists(store: OfficeStore, site_id: int) -> bool:
    return bool(store.query("SELECT 1 FROM sites WHERE id = ?", (site_id,)))


def finding_id_where(finding_id: str) -> tuple[str, list[Any]]:
    """One finding, as a condition for ``finding_rows``."""
    return "f.id = ?", [finding_id]


def latest_received(store: OfficeStore) -> str:
    return str(store.query("SELECT COALESCE(MAX(received_at_utc), '') FROM findings")[0][0])
