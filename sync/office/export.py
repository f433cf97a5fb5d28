"""Export the office database for GIS (GeoJSON for QGIS/Leaflet) or a spreadsheet (CSV).

One feature per finding, or with ``sites`` one per damage site. Findings without a position are
kept in GeoJSON with a null geometry (valid GeoJSON) and in CSV with empty coordinates.
The columns up to ``received_at_utc`` / ``image_path`` are a stable interface; the office review
columns (``REVIEW_COLUMNS``, see sync.office.review) follow them (per finding, then the current
review's ``review_note``), and ``--min-grade`` filters on the office grade. How a site takes
its findings' reviews: see ``site_review``; how a correction moves a finding between sites:
``site_membership``.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any, TextIO

from edge.wire.serialize import FindingFormatError, format_utc, parse_utc
from sync.office.review import (
    OFFICE_GRADE_SQL,
    REVIEW_COLUMNS,
    REVIEW_SELECT,
    ensure_reviews_readable,
)
from sync.office.site_review import SITE_REVIEW_COLUMNS, review_sites
from sync.office.store import CURRENT_REVIEW_JOIN, OfficeStore

FINDING_COLUMNS = (
    "id", "vehicle_id", "boot_id", "seq", "captured_at_utc", "grade", "type_codes",
    "lat_deg", "lon_deg", "model_id", "origin", "sightings", "site_ids", "image_path",
    "received_at_utc", *REVIEW_COLUMNS, "review_note",
)  # fmt: skip
SITE_COLUMNS = (
    "site_id", "type_code", "lat_deg", "lon_deg", "sightings", "max_grade", "first_seen_utc",
    "last_seen_utc", "vehicles", "last_finding_id", "image_path", *SITE_REVIEW_COLUMNS,
)  # fmt: skip


def parse_since(text: str) -> str:
    """An ISO date or time as the stored text form; a date or a zone-less time is UTC."""
    try:
        when = parse_utc(text, "--since")
    except FindingFormatError:
        try:
            when = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(
                f"--since {text!r}: expected an ISO-8601 date or time, e.g. 2024-05-01 or "
                "2024-05-01T08:00:00Z"
            ) from None
    return format_utc(when)


def finding_rows(
    store: OfficeStore,
    *,
    min_grade: int = 0,
    since: str | None = None,
    where: tuple[str, list[Any]] = ("1 = 1", []),
) -> list[dict[str, Any]]:
    """Findings as exported; ``where`` adds SQL conditions over ``findings f`` and its current
    review ``r`` with their parameters (the console's filter, ``sync.office.console_map``)."""
    ensure_reviews_readable(store)
    rows = store.query(
        "SELECT f.id, f.vehicle_id, f.boot_id, f.seq, f.captured_at_utc, f.grade, f.type_codes, "
        "f.lat_deg, f.lon_deg, f.model_id, f.origin, f.sightings, f.received_at_utc, "
        f"i.path AS image_path, {REVIEW_SELECT}, "
        f"(SELECT {store.group_concat('site_id')} FROM site_findings sf "
        "WHERE sf.finding_id = f.id) "
        "AS site_ids "
        f"FROM findings f LEFT JOIN images i ON i.finding_id = f.id {CURRENT_REVIEW_JOIN} "
        f"WHERE {OFFICE_GRADE_SQL} >= ? AND f.captured_at_utc >= ? AND {where[0]} "
        "ORDER BY f.captured_at_utc, f.id",
        (min_grade, since or "", *where[1]),
    )
    return [{c: row[c] for c in FINDING_COLUMNS} for row in rows]


def site_rows(
    store: OfficeStore,
    *,
    min_grade: int = 0,
    since: str | None = None,
    where: tuple[str, list[Any]] = ("1 = 1", []),
) -> list[dict[str, Any]]:
    """Damage sites as exported; ``where`` adds SQL conditions over ``sites s``."""
    ensure_reviews_readable(store)
    rows = store.query(
        "SELECT s.id AS site_id, s.type_code, s.lat_deg, s.lon_deg, s.sightings, s.max_grade, "
        "s.first_seen_utc, s.last_seen_utc, s.last_finding_id, i.path AS image_path, "
        f"(SELECT {store.group_concat('f.vehicle_id', distinct=True)} FROM site_findings sf "
        " JOIN findings f ON f.id = sf.finding_id WHERE sf.site_id = s.id) AS vehicles "
        "FROM sites s LEFT JOIN images i ON i.finding_id = s.last_finding_id "
        f"WHERE s.last_seen_utc >= ? AND {where[0]} ORDER BY s.id",
        (since or "", *where[1]),
    )
    sites = review_sites(store, [dict(row) for row in rows])
    kept = [s for s in sites if s["office_grade"] >= min_grade and not s["dismissed"]]
    kept.sort(key=lambda s: (-s["office_grade"], s["site_id"]))
    return [{c: s[c] for c in SITE_COLUMNS} for s in kept]


def write_geojson(rows: list[dict[str, Any]], out: TextIO) -> None:
    json.dump(feature_collection(rows), out, ensure_ascii=False)
    out.write("\n")


def feature_collection(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows with ``lat_deg``/``lon_deg`` as a GeoJSON FeatureCollection (the other columns are
    the properties)."""
    features = []
    for row in rows:
        lat, lon = row["lat_deg"], row["lon_deg"]
        geometry = (
            None
            if lat is None or lon is None
            else {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}
        )
        props = {k: v for k, v in row.items() if k not in ("lat_deg", "lon_deg")}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def write_csv(rows: list[dict[str, Any]], columns: tuple[str, ...], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
