"""Versioned office schemas, migrated in place at start (SQLite here; PostgreSQL in pg_schema).

``meta.schema_version`` names the newest step applied; a writable open applies the missing
steps in one transaction (SQLite: ``BEGIN IMMEDIATE``, so two processes starting at once take
turns and the second finds nothing left to do). Steps only add: an older reader still reads.

1. findings, images, track points, vehicle status, damage sites (the original schema).
2. ``reviews`` (added to version-1 files on first write before versions were counted, so a
   version-1 file may have it already), ``parked_images`` (images that came before their
   finding, ``sync.office.ownership``; made by the receiver on demand before) and an index of
   site members by site.
"""

from __future__ import annotations

import sqlite3

SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
    id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    captured_at_utc TEXT NOT NULL,
    lat_deg REAL,
    lon_deg REAL,
    grade INTEGER NOT NULL,
    type_codes TEXT NOT NULL,
    model_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    sightings INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at_utc TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS findings_captured ON findings (captured_at_utc);
CREATE TABLE IF NOT EXISTS images (
    finding_id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    received_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS track_points (
    vehicle_id TEXT NOT NULL,
    t_utc TEXT NOT NULL,  -- '' when the vehicle did not know the time
    lat_deg REAL NOT NULL,
    lon_deg REAL NOT NULL,
    speed_mps REAL,
    heading_deg REAL,
    hdop REAL,
    fix_mode INTEGER NOT NULL,
    received_at_utc TEXT NOT NULL,
    PRIMARY KEY (vehicle_id, t_utc, lat_deg, lon_deg)
);
CREATE TABLE IF NOT EXISTS vehicle_status (
    vehicle_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sites (
    id INTEGER PRIMARY KEY,
    type_code TEXT NOT NULL,
    lat_deg REAL NOT NULL,
    lon_deg REAL NOT NULL,
    sightings INTEGER NOT NULL,
    max_grade INTEGER NOT NULL,
    first_seen_utc TEXT NOT NULL,
    last_seen_utc TEXT NOT NULL,
    last_finding_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sites_type_lat ON sites (type_code, lat_deg);
CREATE TABLE IF NOT EXISTS site_findings (
    finding_id TEXT NOT NULL,
    type_code TEXT NOT NULL,
    site_id INTEGER NOT NULL,
    PRIMARY KEY (finding_id, type_code)
);
"""

SQLITE_V2 = """
-- Added with office review while still schema 1 (older software ignores it): a version-1
-- file may or may not have it.
-- Beside the findings, never over them; the highest id of a finding is its current review.
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    finding_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'corrected', 'not_damage')),
    grade INTEGER CHECK (grade BETWEEN 0 AND 3),  -- null unless corrected
    type_codes TEXT,  -- comma-separated; null unless corrected
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewed_at_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_finding ON reviews (finding_id, id);
CREATE TABLE IF NOT EXISTS parked_images (
    vehicle_id TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    parked_at_unix_s REAL NOT NULL,
    PRIMARY KEY (vehicle_id, finding_id)
);
CREATE INDEX IF NOT EXISTS parked_images_finding ON parked_images (finding_id);
CREATE INDEX IF NOT EXISTS site_findings_site ON site_findings (site_id);
"""
SQLITE_STEPS = {1: SQLITE_V1, 2: SQLITE_V2}


def statements(script: str) -> list[str]:
    """The statements of a DDL script (comments dropped first: they may hold semicolons)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def sqlite_version(db: sqlite3.Connection) -> int:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def migrate_sqlite(db: sqlite3.Connection, target: int) -> int:
    """Bring the database up to ``target`` in one transaction; returns the version before."""
    db.execute("BEGIN IMMEDIATE")
    try:
        before = sqlite_version(db)
        for version in range(before + 1, target + 1):
            for statement in statements(SQLITE_STEPS[version]):
                db.execute(statement)
        if target > before:
            db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value",
                (str(target),),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return before
