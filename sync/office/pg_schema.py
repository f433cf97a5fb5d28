"""The office schema on PostgreSQL + PostGIS, versioned like SQLite's (sync.office.migrations).

Same tables and columns as SQLite, so the shared review and export SQL runs unchanged; in
addition every position is a ``geometry(Point, 4326)`` generated from ``lat_deg``/``lon_deg``
(so no writer can let them disagree), with a GiST index on it for QGIS and one on its
geography for site grouping (``ST_DWithin`` in metres). ``site_findings.rowid`` keeps SQLite's
join order, which ``recount_site`` uses to break ties.

Steps: 1 the original tables; 2 ``parked_images``, the site-member index and the read-only
GIS views in schema ``gis`` (``gis.findings``, ``gis.damage_sites``, ``gis.patrol_tracks``).
A migration runs in one transaction under an advisory lock, so receivers that start together
take turns. ``CREATE EXTENSION postgis`` needs a superuser once (or a database made from a
template that has it).
"""

from __future__ import annotations

from typing import Any

from sync.office.migrations import statements

MIGRATION_LOCK = 8_114_001  # pg_advisory_xact_lock key: one migration at a time

_POINT = "geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon_deg, lat_deg), 4326)) STORED"  # noqa: E501

PG_V1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
    id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    captured_at_utc TEXT NOT NULL,
    lat_deg DOUBLE PRECISION,
    lon_deg DOUBLE PRECISION,
    grade INTEGER NOT NULL,
    type_codes TEXT NOT NULL,
    model_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    sightings INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at_utc TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    geom {_POINT}
);
CREATE INDEX IF NOT EXISTS findings_captured ON findings (captured_at_utc);
CREATE INDEX IF NOT EXISTS findings_geom ON findings USING gist (geom);
CREATE TABLE IF NOT EXISTS images (
    finding_id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    received_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS track_points (
    vehicle_id TEXT NOT NULL,
    t_utc TEXT NOT NULL,
    lat_deg DOUBLE PRECISION NOT NULL,
    lon_deg DOUBLE PRECISION NOT NULL,
    speed_mps DOUBLE PRECISION,
    heading_deg DOUBLE PRECISION,
    hdop DOUBLE PRECISION,
    fix_mode INTEGER NOT NULL,
    received_at_utc TEXT NOT NULL,
    geom {_POINT},
    PRIMARY KEY (vehicle_id, t_utc, lat_deg, lon_deg)
);
CREATE TABLE IF NOT EXISTS vehicle_status (
    vehicle_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sites (
    id BIGSERIAL PRIMARY KEY,
    type_code TEXT NOT NULL,
    lat_deg DOUBLE PRECISION NOT NULL,
    lon_deg DOUBLE PRECISION NOT NULL,
    sightings INTEGER NOT NULL,
    max_grade INTEGER NOT NULL,
    first_seen_utc TEXT NOT NULL,
    last_seen_utc TEXT NOT NULL,
    last_finding_id TEXT NOT NULL,
    geom {_POINT}
);
CREATE INDEX IF NOT EXISTS sites_geom ON sites USING gist (geom);
CREATE INDEX IF NOT EXISTS sites_geog ON sites USING gist ((geom::geography));
CREATE TABLE IF NOT EXISTS site_findings (
    finding_id TEXT NOT NULL,
    type_code TEXT NOT NULL,
    site_id BIGINT NOT NULL,
    rowid BIGSERIAL,
    PRIMARY KEY (finding_id, type_code)
);
CREATE TABLE IF NOT EXISTS reviews (
    id BIGSERIAL PRIMARY KEY,
    finding_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'corrected', 'not_damage')),
    grade INTEGER CHECK (grade BETWEEN 0 AND 3),
    type_codes TEXT,
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewed_at_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_finding ON reviews (finding_id, id);
"""

PG_V2 = """
CREATE TABLE IF NOT EXISTS parked_images (
    vehicle_id TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    parked_at_unix_s DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (vehicle_id, finding_id)
);
CREATE INDEX IF NOT EXISTS parked_images_finding ON parked_images (finding_id);
CREATE INDEX IF NOT EXISTS site_findings_site ON site_findings (site_id);
CREATE SCHEMA IF NOT EXISTS gis;
"""


def gis_views() -> list[str]:
    """The read-only views for GIS staff: the columns of ``office export`` plus ``geom``."""
    from sync.office.review import REVIEW_SELECT
    from sync.office.store import CURRENT_REVIEW_JOIN

    return [
        "CREATE OR REPLACE VIEW gis.findings AS SELECT f.id, f.vehicle_id, f.boot_id, f.seq, "
        "f.captured_at_utc, f.grade, f.type_codes, f.lat_deg, f.lon_deg, f.model_id, f.origin, "
        "f.sightings, (SELECT string_agg(sf.site_id::text, ',' ORDER BY sf.rowid) "
        "FROM site_findings sf WHERE sf.finding_id = f.id) AS site_ids, i.path AS image_path, "
        f"f.received_at_utc, {REVIEW_SELECT}, f.geom "
        f"FROM public.findings f LEFT JOIN images i ON i.finding_id = f.id {CURRENT_REVIEW_JOIN}",
        # A site's office grade, per site_review: the highest of its findings' grades for the
        # site's type after review (not_damage 0; corrected: its grade where it names the type).
        "CREATE OR REPLACE VIEW gis.damage_sites AS SELECT s.id AS site_id, s.type_code, "
        "s.lat_deg, s.lon_deg, s.sightings, s.max_grade, s.first_seen_utc, s.last_seen_utc, "
        "(SELECT string_agg(DISTINCT f.vehicle_id, ',') FROM site_findings sf "
        " JOIN public.findings f ON f.id = sf.finding_id WHERE sf.site_id = s.id) AS vehicles, "
        "s.last_finding_id, i.path AS image_path, nr.verdict AS review_verdict, "
        "nr.grade AS reviewed_grade, nr.type_codes AS reviewed_types, nr.reviewer AS reviewed_by, "
        "nr.reviewed_at_utc, "
        "(SELECT max(CASE WHEN r.verdict = 'not_damage' THEN 0 WHEN r.verdict = 'corrected' THEN "
        " CASE WHEN s.type_code = 'manual' "
        " OR s.type_code = ANY(string_to_array(r.type_codes, ',')) "
        " THEN r.grade ELSE 0 END ELSE COALESCE((SELECT max((d->>'grade')::int) FROM "
        " jsonb_array_elements(f.payload::jsonb->'damages') d WHERE d->>'type_code' = s.type_code),"
        " f.grade) END) FROM site_findings sf JOIN public.findings f ON f.id = sf.finding_id "
        f" {CURRENT_REVIEW_JOIN} WHERE sf.site_id = s.id) AS office_grade, "
        "(SELECT count(*) FROM site_findings sf JOIN reviews r ON r.finding_id = sf.finding_id "
        " WHERE sf.site_id = s.id AND r.id = (SELECT max(id) FROM reviews "
        " WHERE finding_id = sf.finding_id)) AS reviewed_sightings, s.geom "
        "FROM sites s LEFT JOIN images i ON i.finding_id = s.last_finding_id "
        # The newest current review among the site's findings (as site_review takes it).
        "LEFT JOIN LATERAL (SELECT r.* FROM site_findings sf JOIN reviews r ON r.id = "
        " (SELECT max(id) FROM reviews WHERE finding_id = sf.finding_id) "
        " WHERE sf.site_id = s.id ORDER BY r.id DESC LIMIT 1) nr ON true",
        # One line per vehicle and (UTC) day, points in time order; untimed points left out.
        "CREATE OR REPLACE VIEW gis.patrol_tracks AS SELECT vehicle_id, left(t_utc, 10) AS day, "
        "count(*) AS points, min(t_utc) AS first_utc, max(t_utc) AS last_utc, "
        "ST_MakeLine(geom ORDER BY t_utc)::geometry(LineString, 4326) AS geom "
        "FROM track_points WHERE t_utc <> '' GROUP BY vehicle_id, left(t_utc, 10) "
        "HAVING count(*) >= 2",
    ]


PG_STEPS = {1: PG_V1, 2: PG_V2}


def pg_version(cur: Any) -> int:
    cur.execute("SELECT to_regclass('meta') IS NOT NULL")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


def migrate_pg(conn: Any, target: int) -> int:
    """Bring the database up to ``target`` in one transaction; returns the version before."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        before = pg_version(cur)
        for version in range(before + 1, target + 1):
            for statement in statements(PG_STEPS[version]):
                cur.execute(statement)
            if version == 2:
                for view in gis_views():
                    cur.execute(view)
        if target > before:
            cur.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                (str(target),),
            )
    return before
