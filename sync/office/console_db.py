"""The office console's tables and queries: staff accounts, repair states, the audit trail, and
the review history per site. With ``console_map`` (the filtered map data) this is all the
console's SQL, so that it moves with the store.

The tables are additive (still schema 2 on both stores): ``CREATE ... IF NOT EXISTS`` when the
console opens a database, ignored by older software; the DDL is the common subset of SQLite and
PostgreSQL but for the audit id's type (``store.serial_pk()``). A site without a
``repair_states`` row is ``new``. The review history per finding stays in ``reviews`` (the
CLI's table); ``audit`` holds the repair changes and the console's account events, one row per
change, never updated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.wire.serialize import format_utc
from sync.office.migrations import statements
from sync.office.store_api import OfficeStore

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
    id {serial_pk},
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


def now_utc() -> str:
    return format_utc(datetime.now(UTC))


def ensure_console_tables(store: OfficeStore) -> None:
    """Create the console's tables and indexes where missing (idempotent)."""
    for statement in statements(CONSOLE_DDL.replace("{serial_pk}", store.serial_pk())):
        store.execute(statement)


def session_secret(store: OfficeStore, fresh: str) -> str:
    """The cookie-signing secret kept in the database (``fresh`` the first time), so a restart
    keeps staff logged in and every console process on the file signs alike."""
    store.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (_SECRET_KEY, fresh)
    )
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


_REPAIR_COLUMNS = ("site_id", "state", "assignee", "due_date", "repaired_at_utc", "repaired_by",
                   "note", "reopened", "updated_by", "updated_at_utc")  # fmt: skip


def write_repair_state(store: OfficeStore, row: dict[str, Any], actor: str, action: str) -> None:
    """Replace a site's repair state and record the change, in one transaction."""
    row = {**row, "updated_by": actor, "updated_at_utc": now_utc()}
    with store.transaction():
        store.execute(
            f"INSERT INTO repair_states ({', '.join(_REPAIR_COLUMNS)}) VALUES "
            f"({','.join('?' * len(_REPAIR_COLUMNS))}) ON CONFLICT (site_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _REPAIR_COLUMNS[1:]),
            tuple(row[c] for c in _REPAIR_COLUMNS),
        )
        detail = {k: row[k] for k in ("state", "assignee", "due_date", "repaired_at_utc",
                                      "repaired_by", "note") if row[k] != ""}  # fmt: skip
        _audit(store, int(row["site_id"]), actor, action, detail)


def sightings_after_repair(store: OfficeStore) -> list[dict[str, Any]]:
    """Repaired or closed sites with a finding captured after the repair: each site once, with
    its newest such finding."""
    rows = store.query(
        "SELECT rs.site_id, f.id AS finding_id, f.captured_at_utc "
        "FROM repair_states rs JOIN site_findings sf ON sf.site_id = rs.site_id "
        "JOIN findings f ON f.id = sf.finding_id "
        "WHERE rs.state IN ('repaired', 'closed') AND f.captured_at_utc > rs.repaired_at_utc "
        "ORDER BY rs.site_id, f.captured_at_utc, f.id"
    )
    # The newest per site, in Python: PostgreSQL has no SQLite's bare column beside MAX().
    newest = {int(r["site_id"]): dict(r) for r in rows}
    return list(newest.values())


def audit_trail(store: OfficeStore, site_id: int) -> list[dict[str, Any]]:
    """The site's repair changes and the reviews of its findings, oldest first."""
    rows = store.query(
        "SELECT at_utc, actor, action, detail, NULL AS finding_id FROM audit WHERE site_id = ? "
        "ORDER BY id",
        (site_id,),
    )
    trail = [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]
    reviews = store.query(
        "SELECT r.reviewed_at_utc, r.reviewer, r.verdict, r.grade, r.type_codes, r.note, "
        "r.finding_id FROM reviews r JOIN site_findings sf ON sf.finding_id = r.finding_id "
        "WHERE sf.site_id = ? ORDER BY r.id",
        (site_id,),
    )
    trail += [{"at_utc": r["reviewed_at_utc"], "actor": r["reviewer"], "action": "review",
               "detail": {k: r[k] for k in ("verdict", "grade", "type_codes", "note")},
               "finding_id": r["finding_id"]} for r in reviews]  # fmt: skip
    # Oldest first (a stable sort: same-second rows keep their order of writing).
    return sorted(trail, key=lambda e: str(e["at_utc"]))


def work_orders(store: OfficeStore) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT rs.site_id, s.type_code, s.lat_deg, s.lon_deg, s.max_grade, rs.state, "
        "rs.assignee, rs.due_date, rs.repaired_at_utc, rs.repaired_by, rs.note, rs.updated_by, "
        "rs.updated_at_utc FROM repair_states rs JOIN sites s ON s.id = rs.site_id "
        "WHERE rs.state IN ('scheduled', 'repaired', 'closed') ORDER BY rs.due_date, rs.site_id"
    )
    return [dict(r) for r in rows]


def site_exists(store: OfficeStore, site_id: int) -> bool:
    return bool(store.query("SELECT 1 FROM sites WHERE id = ?", (site_id,)))
