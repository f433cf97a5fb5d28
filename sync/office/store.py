"""The office's SQLite database (the embedded default store): findings, images, tracks,
vehicle status and damage sites.

Every write is idempotent on the sender's identity (finding id; vehicle, time and place for track
points), because MQTT QoS 1 delivers at least once and vehicles resend after every reconnect.
A finding joins the nearest damage site of the same type within ``site_radius_m`` (across
passes and vehicles) in the same transaction that stores it, so a repeat delivery never counts
as another sighting. An office correction of its types moves it between sites the same way
(``sync.office.site_membership``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.wire.ids import FINDING_ID_RE, VEHICLE_ID_RE
from edge.wire.serialize import format_utc, parse_utc
from sync.office.migrations import migrate_sqlite
from sync.office.store_api import OfficeStore, StoreCounts, StoreError, open_store

__all__ = ["OfficeStore", "SqliteStore", "StoreCounts", "StoreError", "open_store"]

SCHEMA_VERSION = 2  # 2: reviews, parked_images, the site-member index (sync.office.migrations)
EARTH_RADIUS_M = 6_371_008.8
MANUAL_TYPE = "manual"  # site type of a crew-marked finding that names no damage type

# For any query over ``findings f``: its current review as ``r`` (null columns when unreviewed).
CURRENT_REVIEW_JOIN = (
    "LEFT JOIN reviews r ON r.id = (SELECT MAX(id) FROM reviews WHERE finding_id = f.id)"
)


def vehicle_site_grades(payload: dict[str, Any]) -> dict[str, int]:
    """The site types of a finding as the vehicle sent it, each with its highest damage grade;
    a crew mark that names no type forms a ``manual`` site with the finding's grade."""
    grades: dict[str, int] = {}
    for d in payload["damages"]:
        grades[d["type_code"]] = max(grades.get(d["type_code"], 0), int(d["grade"]))
    return dict(sorted(grades.items())) or {MANUAL_TYPE: int(payload["grade"])}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def write_durably(path: Path, data: bytes) -> None:
    """Write, fsync and rename into place: the file is whole or absent after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: receivers sharing one volume never write the same temp file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def now_utc() -> str:
    return format_utc(datetime.now(UTC))


def image_path_in(images_dir: Path | None, vehicle_id: str, finding_id: str) -> Path:
    """``<images>/<vehicle>/<finding id>.jpg``: a finding id belongs to one vehicle, so
    receivers sharing one volume never name the same file for different images."""
    # Only ids that passed these patterns ever name a file: no separators, no '..'.
    if images_dir is None:
        raise ValueError("this store was opened without an images folder")
    if not VEHICLE_ID_RE.match(vehicle_id) or not FINDING_ID_RE.match(finding_id):
        raise ValueError(f"refusing to name an image file from {vehicle_id!r}/{finding_id!r}")
    return images_dir / vehicle_id / f"{finding_id}.jpg"


class SqliteStore:
    """Single-writer store; open one per process."""

    def __init__(
        self,
        db_path: Path,
        images_dir: Path | None,
        *,
        site_radius_m: float = 5.0,
        read_only: bool = False,
    ) -> None:
        """Open (creating unless ``read_only``) the database; StoreError names the file."""
        self.db_path = db_path
        self.images_dir = images_dir
        self.site_radius_m = site_radius_m
        try:
            if read_only:
                if not db_path.is_file():
                    raise StoreError(f"office database {db_path}: no such file")
                self._db = sqlite3.connect(
                    f"file:{db_path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                db_path.parent.mkdir(parents=True, exist_ok=True)
                if images_dir is not None:
                    images_dir.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                migrate_sqlite(self._db, SCHEMA_VERSION)
            found = int(
                self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise StoreError(f"office database {db_path}: {exc}") from exc
        # A reader takes an older file as it is (it never writes); only a newer one is refused.
        if found > SCHEMA_VERSION or (found != SCHEMA_VERSION and not read_only):
            raise StoreError(
                f"office database {db_path}: schema version {found}, this software knows "
                f"{SCHEMA_VERSION}"
            )

    @property
    def location(self) -> str:
        return str(self.db_path)

    def close(self) -> None:
        self._db.close()

    # --- writes ---------------------------------------------------------------------------

    def add_finding(self, payload: dict[str, Any]) -> bool:
        """Store a schema-valid finding payload; False when its id was already stored."""
        fid = payload["id"]
        captured = format_utc(parse_utc(payload["captured_at_utc"], "captured_at_utc"))
        pos = payload["position"]
        lat, lon = (pos["lat_deg"], pos["lon_deg"]) if pos else (None, None)
        types = sorted({d["type_code"] for d in payload["damages"]})
        with self.transaction():
            self._db.execute(
                "INSERT INTO findings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,1) "
                "ON CONFLICT(id) DO UPDATE SET deliveries = deliveries + 1",
                (
                    fid, payload["vehicle_id"], payload["boot_id"], payload["seq"], captured,
                    lat, lon, payload["grade"], ",".join(types), payload["model_id"],
                    payload["origin"], payload["sightings"],
                    json.dumps(payload, separators=(",", ":")), now_utc(),
                ),
            )  # fmt: skip
            row = self._db.execute("SELECT deliveries FROM findings WHERE id=?", (fid,)).fetchone()
            new = row[0] == 1  # the upsert counts repeats
            if new and lat is not None and lon is not None:
                for type_code, grade in vehicle_site_grades(payload).items():
                    self.join_site(fid, type_code, lat, lon, grade, captured)
        return new

    def join_site(
        self, fid: str, type_code: str, lat: float, lon: float, grade: int, seen: str
    ) -> int:
        """Add a sighting to the nearest site of ``type_code`` within the radius, or found one;
        returns the site's id. Call inside ``transaction()``."""
        dlat = math.degrees(self.site_radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(0.01, math.cos(math.radians(lat)))
        candidates = self._db.execute(
            "SELECT id, lat_deg, lon_deg FROM sites WHERE type_code=? AND lat_deg BETWEEN ? AND ? "
            "AND lon_deg BETWEEN ? AND ?",
            (type_code, lat - dlat, lat + dlat, lon - dlon, lon + dlon),
        ).fetchall()
        best = min(((distance_m(lat, lon, r[1], r[2]), r[0]) for r in candidates), default=None)
        if best is not None and best[0] <= self.site_radius_m:
            site_id = best[1]
            # The site's position is the mean of its sightings: repeated passes refine it.
            self._db.execute(
                "UPDATE sites SET lat_deg = (lat_deg * sightings + ?) / (sightings + 1), "
                "lon_deg = (lon_deg * sightings + ?) / (sightings + 1), sightings = sightings + 1, "
                "max_grade = MAX(max_grade, ?), first_seen_utc = MIN(first_seen_utc, ?), "
                "last_seen_utc = MAX(last_seen_utc, ?), "
                "last_finding_id = CASE WHEN ? >= last_seen_utc THEN ? ELSE last_finding_id END "
                "WHERE id = ?",
                (lat, lon, grade, seen, seen, seen, fid, site_id),
            )
        else:
            cur = self._db.execute(
                "INSERT INTO sites (type_code, lat_deg, lon_deg, sightings, max_grade, "
                "first_seen_utc, last_seen_utc, last_finding_id) VALUES (?,?,?,1,?,?,?,?)",
                (type_code, lat, lon, grade, seen, seen, fid),
            )
            site_id = cur.lastrowid
        self._db.execute(
            "INSERT OR IGNORE INTO site_findings VALUES (?,?,?)", (fid, type_code, site_id)
        )
        assert site_id is not None
        return site_id

    def image_path_for(self, vehicle_id: str, finding_id: str) -> Path:
        return image_path_in(self.images_dir, vehicle_id, finding_id)

    def add_image(self, vehicle_id: str, finding_id: str, jpeg: bytes) -> bool:
        """Write the image file (atomically) and its row; False when it was already stored."""
        path = self.image_path_for(vehicle_id, finding_id)
        known = self._db.execute(
            "SELECT 1 FROM images WHERE finding_id=?", (finding_id,)
        ).fetchone()
        if known:
            return False
        write_durably(path, jpeg)
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?)",
                (finding_id, vehicle_id, str(path), len(jpeg), now_utc()),
            )
        return True

    def add_track(self, vehicle_id: str, points: list[dict[str, Any]]) -> int:
        """Store schema-valid track points; returns how many were new."""
        before = self._db.total_changes
        with self.transaction():
            # A point is the same point whatever batch carried it: key on time and place.
            now = now_utc()
            self._db.executemany(
                "INSERT OR IGNORE INTO track_points VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        vehicle_id,
                        "" if p["t_utc"] is None else format_utc(parse_utc(p["t_utc"], "t_utc")),
                        p["lat_deg"], p["lon_deg"], p["speed_mps"], p["heading_deg"], p["hdop"],
                        p["fix_mode"], now,
                    )
                    for p in points
                ],
            )  # fmt: skip
        return self._db.total_changes - before

    def set_status(self, vehicle_id: str, payload: dict[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO vehicle_status VALUES (?,?,?,?) ON CONFLICT(vehicle_id) DO UPDATE "
                "SET online=excluded.online, payload=excluded.payload, "
                "received_at_utc=excluded.received_at_utc",
                (vehicle_id, int(bool(payload["online"])), json.dumps(payload), now_utc()),
            )

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` the writes inside commit together or not at all."""
        return _Transaction(self._db)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement; for writes, call inside ``transaction()``."""
        return self._db.execute(sql, params)

    # --- reads ----------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        q = self._db.execute
        return StoreCounts(
            findings=q("SELECT COUNT(*) FROM findings").fetchone()[0],
            deliveries=q("SELECT COALESCE(SUM(deliveries), 0) FROM findings").fetchone()[0],
            images=q("SELECT COUNT(*) FROM images").fetchone()[0],
            track_points=q("SELECT COUNT(*) FROM track_points").fetchone()[0],
            sites=q("SELECT COUNT(*) FROM sites").fetchone()[0],
            vehicles_online=q("SELECT COUNT(*) FROM vehicle_status WHERE online=1").fetchone()[0],
        )

    def finding_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM findings")}

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        cur = self._db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    def has_table(self, name: str) -> bool:
        return bool(
            self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
            ).fetchone()
        )

    def group_concat(self, expr: str, *, distinct: bool = False) -> str:
        return f"group_concat({'DISTINCT ' if distinct else ''}{expr})"

    def max_damage_score(self, payload: str) -> str:
        return (f"(SELECT MAX(json_extract(d.value, '$.score')) "
                f"FROM json_each({payload}, '$.damages') d)")  # fmt: skip

    def int_part(self, expr: str) -> str:
        return f"CAST({expr} AS INTEGER)"

    def serial_pk(self) -> str:
        return "INTEGER PRIMARY KEY"


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
