"""The office store on PostgreSQL + PostGIS: several receivers, one database, QGIS beside them.

psycopg 3 with a connection pool; a transaction holds one pooled connection for its thread.
Writes are the same idempotent upserts as on SQLite (``ON CONFLICT`` on the finding id, on
vehicle + time + place for track points), so a message delivered twice, to the same receiver or
to another one of a shared group, is stored once.

Site grouping is done by the database (``ST_DWithin`` on geography, in metres, on the sphere
like SQLite's haversine) and is correct with receivers writing at once: before looking for a
site, a transaction takes a transaction-scoped advisory lock on every grid cell (per type) that
a disc of twice the radius around the finding touches, in sorted order. Two findings within the
radius of each other always share a cell of those discs, so the second one waits until the
first has committed its site and then sees it; findings far apart never wait for each other.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from edge.wire.serialize import format_utc, parse_utc
from sync.office.pg_schema import migrate_pg, pg_version
from sync.office.store import (
    EARTH_RADIUS_M,
    SCHEMA_VERSION,
    StoreCounts,
    StoreError,
    image_path_in,
    now_utc,
    vehicle_site_grades,
    write_durably,
)

_CELL_M = 20.0  # grid cell for the site locks; a few cells per lock set at the 5 m default


class Row(tuple[Any, ...]):
    """A result row read like sqlite3.Row: by name, by index, and ``dict(row)``."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {col.name: i for i, col in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names = names
        return row

    return make


class _Result:
    """Rows fetched before the connection went back to the pool."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)


def _one_line(exc: BaseException) -> str:
    """The server's reason on one line (psycopg adds hints on lines of their own)."""
    return " ".join(str(exc).split())


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


class PostgresStore:
    """Many writers (threads, processes, machines) on one database."""

    def __init__(
        self,
        url: str,
        images_dir: Path | None,
        *,
        site_radius_m: float = 5.0,
        read_only: bool = False,
        pool_size: int = 4,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.images_dir = images_dir
        self.site_radius_m = site_radius_m
        self._local = threading.local()
        try:
            if images_dir is not None and not read_only:
                images_dir.mkdir(parents=True, exist_ok=True)
            # One plain connection first: a wrong URL or a server that is down is reported at
            # once with the server's reason, not after the pool's wait.
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout_s))).close()
            self._pool = ConnectionPool(
                url, min_size=1, max_size=pool_size, open=False,
                kwargs={"autocommit": True, "row_factory": _row_factory},
            )  # fmt: skip
            self._pool.open(wait=True, timeout=connect_timeout_s)
            with self._pool.connection() as conn:
                if read_only:
                    with conn.cursor() as cur:
                        found = pg_version(cur)
                else:
                    found = max(migrate_pg(conn, SCHEMA_VERSION), SCHEMA_VERSION)
        except (psycopg.Error, OSError) as exc:
            self._close_quietly()
            raise StoreError(f"office database {self.location}: {_one_line(exc)}") from exc
        except Exception as exc:  # the pool's own timeout (PoolTimeout is not a psycopg.Error)
            self._close_quietly()
            reason = f"cannot connect: {_one_line(exc)}"
            raise StoreError(f"office database {self.location}: {reason}") from exc
        if found > SCHEMA_VERSION or found == 0:
            self._close_quietly()
            raise StoreError(
                f"office database {self.location}: schema version {found}, this software "
                f"knows {SCHEMA_VERSION}"
            )

    @property
    def location(self) -> str:
        return redacted(self.url)

    def _close_quietly(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        self._pool.close()

    # --- plumbing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One pooled connection for this thread until commit; nested calls join it."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
        except psycopg.Error as exc:
            raise StoreError(f"office database {self.location}: {_one_line(exc)}") from exc

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Result:
        sql = sql.replace("?", "%s")  # the shared SQL's placeholders; it holds no literal '?'
        try:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                return self._run(conn, sql, params)
            with self._pool.connection() as fresh:
                return self._run(fresh, sql, params)
        except psycopg.Error as exc:
            raise StoreError(f"office database {self.location}: {_one_line(exc)}") from exc

    @staticmethod
    def _run(conn: Any, sql: str, params: tuple[Any, ...]) -> _Result:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            return _Result(rows, cur.rowcount)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def has_table(self, name: str) -> bool:
        return bool(self.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])

    def group_concat(self, expr: str, *, distinct: bool = False) -> str:
        value = f"({expr})::text"
        if distinct:
            return f"string_agg(DISTINCT {value}, ',' ORDER BY {value})"
        return f"string_agg({value}, ',')"

    def max_damage_score(self, payload: str) -> str:
        # The payload is stored as text (byte for byte what came): cast to read it as JSON.
        return (f"(SELECT MAX((d->>'score')::double precision) "
                f"FROM jsonb_array_elements(({payload})::jsonb->'damages') d)")  # fmt: skip

    def int_part(self, expr: str) -> str:
        # CAST AS INTEGER would round, and in 32 bits: the cluster key needs 64.
        return f"trunc({expr})::bigint"

    def serial_pk(self) -> str:
        return "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    # --- writes ---------------------------------------------------------------------------

    def add_finding(self, payload: dict[str, Any]) -> bool:
        fid = payload["id"]
        captured = format_utc(parse_utc(payload["captured_at_utc"], "captured_at_utc"))
        pos = payload["position"]
        lat, lon = (pos["lat_deg"], pos["lon_deg"]) if pos else (None, None)
        types = sorted({d["type_code"] for d in payload["damages"]})
        with self.transaction():
            # Two receivers with the same id at once: the second waits on the first's row,
            # then counts a delivery (the upsert), so exactly one of them founds sites.
            row = self.execute(
                "INSERT INTO findings (id, vehicle_id, boot_id, seq, captured_at_utc, lat_deg, "
                "lon_deg, grade, type_codes, model_id, origin, sightings, payload, "
                "received_at_utc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) "
                "DO UPDATE SET deliveries = findings.deliveries + 1 RETURNING deliveries",
                (
                    fid, payload["vehicle_id"], payload["boot_id"], payload["seq"], captured,
                    lat, lon, payload["grade"], ",".join(types), payload["model_id"],
                    payload["origin"], payload["sightings"],
                    json.dumps(payload, separators=(",", ":")), now_utc(),
                ),
            ).fetchone()  # fmt: skip
            new = row[0] == 1
            if new and lat is not None and lon is not None:
                for type_code, grade in vehicle_site_grades(payload).items():
                    self.join_site(fid, type_code, lat, lon, grade, captured)
        return new

    def lock_cells(self, type_code: str, lat: float, lon: float) -> None:
        """Take the advisory locks of the site cells near this point (see the module doc)."""
        reach_m = 2 * self.site_radius_m
        cell_deg = _CELL_M / 111_195.0
        dlat = math.degrees(reach_m / EARTH_RADIUS_M)
        dlon = dlat / max(0.01, math.cos(math.radians(lat)))
        cells = (
            (ix, iy)
            for ix in range(math.floor((lon - dlon) / cell_deg), math.floor((lon + dlon) / cell_deg) + 1)  # noqa: E501
            for iy in range(math.floor((lat - dlat) / cell_deg), math.floor((lat + dlat) / cell_deg) + 1)  # noqa: E501
        )
        keys = sorted({((ix * 73_856_093) ^ (iy * 19_349_663)) & 0x7FFF_FFFF for ix, iy in cells})
        # One round trip; unnest yields the (sorted) keys in order, so every transaction takes
        # its locks in the same order and two of them never wait for each other in a circle.
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtext(?), k) FROM unnest(?::int[]) AS k",
            (type_code, keys),
        )

    def join_site(
        self, fid: str, type_code: str, lat: float, lon: float, grade: int, seen: str
    ) -> int:
        self.lock_cells(type_code, lat, lon)
        point = "ST_SetSRID(ST_MakePoint(?, ?), 4326)::geography"
        near = self.execute(
            f"SELECT id FROM sites WHERE type_code = ? AND ST_DWithin(geom::geography, {point}, "
            f"?, false) ORDER BY ST_Distance(geom::geography, {point}, false), id LIMIT 1",
            (type_code, lon, lat, self.site_radius_m, lon, lat),
        ).fetchone()
        if near is not None:
            site_id = int(near[0])
            self.execute(
                "UPDATE sites SET lat_deg = (lat_deg * sightings + ?) / (sightings + 1), "
                "lon_deg = (lon_deg * sightings + ?) / (sightings + 1), sightings = sightings + 1, "
                "max_grade = GREATEST(max_grade, ?), first_seen_utc = LEAST(first_seen_utc, ?), "
                "last_seen_utc = GREATEST(last_seen_utc, ?), "
                "last_finding_id = CASE WHEN ? >= last_seen_utc THEN ? ELSE last_finding_id END "
                "WHERE id = ?",
                (lat, lon, grade, seen, seen, seen, fid, site_id),
            )
        else:
            site_id = int(
                self.execute(
                    "INSERT INTO sites (type_code, lat_deg, lon_deg, sightings, max_grade, "
                    "first_seen_utc, last_seen_utc, last_finding_id) VALUES (?,?,?,1,?,?,?,?) "
                    "RETURNING id",
                    (type_code, lat, lon, grade, seen, seen, fid),
                ).fetchone()[0]
            )
        self.execute(
            "INSERT INTO site_findings (finding_id, type_code, site_id) VALUES (?,?,?) "
            "ON CONFLICT DO NOTHING",
            (fid, type_code, site_id),
        )
        return site_id

    def image_path_for(self, vehicle_id: str, finding_id: str) -> Path:
        return image_path_in(self.images_dir, vehicle_id, finding_id)

    def add_image(self, vehicle_id: str, finding_id: str, jpeg: bytes) -> bool:
        path = self.image_path_for(vehicle_id, finding_id)
        if self.execute("SELECT 1 FROM images WHERE finding_id = ?", (finding_id,)).fetchone():
            return False
        write_durably(path, jpeg)  # two receivers with the same image write the same bytes
        with self.transaction():
            done = self.execute(
                "INSERT INTO images VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (finding_id, vehicle_id, str(path), len(jpeg), now_utc()),
            )
        return done.rowcount == 1

    def add_track(self, vehicle_id: str, points: list[dict[str, Any]]) -> int:
        new = 0
        now = now_utc()
        with self.transaction():
            for p in points:
                t = "" if p["t_utc"] is None else format_utc(parse_utc(p["t_utc"], "t_utc"))
                new += self.execute(
                    "INSERT INTO track_points (vehicle_id, t_utc, lat_deg, lon_deg, speed_mps, "
                    "heading_deg, hdop, fix_mode, received_at_utc) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    (vehicle_id, t, p["lat_deg"], p["lon_deg"], p["speed_mps"], p["heading_deg"],
                     p["hdop"], p["fix_mode"], now),
                ).rowcount  # fmt: skip
        return new

    def set_status(self, vehicle_id: str, payload: dict[str, Any]) -> None:
        with self.transaction():
            self.execute(
                "INSERT INTO vehicle_status VALUES (?,?,?,?) ON CONFLICT (vehicle_id) DO UPDATE "
                "SET online = excluded.online, payload = excluded.payload, "
                "received_at_utc = excluded.received_at_utc",
                (vehicle_id, int(bool(payload["online"])), json.dumps(payload), now_utc()),
            )

    # --- reads ----------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        row = self.execute(
            "SELECT (SELECT count(*) FROM findings), "
            "(SELECT COALESCE(sum(deliveries), 0)::bigint FROM findings), "
            "(SELECT count(*) FROM images), (SELECT count(*) FROM track_points), "
            "(SELECT count(*) FROM sites), "
            "(SELECT count(*) FROM vehicle_status WHERE online = 1)"
        ).fetchone()
        return StoreCounts(*(int(v) for v in row))

    def finding_ids(self) -> set[str]:
        return {r[0] for r in self.query("SELECT id FROM findings")}
