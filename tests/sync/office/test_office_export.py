"""`roadpatrol office export`: GeoJSON and CSV of findings or damage sites, with filters.

Every test here runs on both stores (SQLite and PostgreSQL + PostGIS: ``store_db``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.cli import main
from edge.types import Finding
from edge.wire.serialize import finding_to_dict
from sync.office.export import FINDING_COLUMNS, SITE_COLUMNS
from sync.office.messages import MessageHandler
from sync.office.store_api import open_store
from sync.payloads import finding_payload

from support.sync_data import make_finding, road_jpegs

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def office_db(store_db: str, tmp_path: Path) -> tuple[str, list[Finding], str]:
    """Five findings: two sightings of one pothole, a crack, an old one, one without a fix."""
    db = store_db
    store = open_store(db, tmp_path / "images")
    handler = MessageHandler(store)
    findings = [
        make_finding("veh-1", 1, grade=3, lat_deg=35.6, lon_deg=140.1, captured_at_utc=T0),
        make_finding(
            "veh-2",
            7,
            grade=3,
            lat_deg=35.600005,
            lon_deg=140.1,
            captured_at_utc=T0 + timedelta(days=1),
        ),
        make_finding(
            "veh-1",
            2,
            grade=1,
            lat_deg=35.61,
            lon_deg=140.2,
            captured_at_utc=T0 + timedelta(hours=1),
        ),
        make_finding(
            "veh-1",
            3,
            grade=2,
            lat_deg=35.7,
            lon_deg=140.3,
            captured_at_utc=T0 - timedelta(days=30),
        ),
        make_finding(
            "veh-2", 8, grade=2, lat_deg=None, lon_deg=None, captured_at_utc=T0 + timedelta(hours=2)
        ),
    ]
    for f in findings:
        handler.handle(f"roadpatrol/v1/{f.vehicle_id}/finding", finding_payload(finding_to_dict(f)))
    handler.handle(f"roadpatrol/v1/veh-1/image/{findings[0].id}", road_jpegs(1, side_px=32)[0])
    image_path = str(store.image_path_for("veh-1", findings[0].id))
    store.close()
    return db, findings, image_path


def _export(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> str:
    assert main(["office", "export", "--db", str(db), *args]) == 0
    return capsys.readouterr().out


def test_geojson_has_one_feature_per_finding_with_lon_lat_and_attributes(
    office_db: tuple[str, list[Finding], str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, findings, image_path = office_db
    doc = json.loads(_export(capsys, db, "--format", "geojson"))
    assert doc["type"] == "FeatureCollection"
    by_id = {f["properties"]["id"]: f for f in doc["features"]}
    assert set(by_id) == {f.id for f in findings}
    for f in findings:
        feature = by_id[f.id]
        props = feature["properties"]
        assert (props["grade"], props["vehicle_id"], props["model_id"]) == (
            f.grade, f.vehicle_id, f.model_id,
        )  # fmt: skip
        assert props["type_codes"] == f.damages[0].type_code
        if f.position is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"] == {
                "type": "Point",
                "coordinates": [round(f.position.lon_deg, 7), round(f.position.lat_deg, 7)],
            }
    assert by_id[findings[0].id]["properties"]["image_path"] == image_path
    assert by_id[findings[2].id]["properties"]["image_path"] is None
    # The two potholes share a site; the crack has its own.
    assert (
        by_id[findings[0].id]["properties"]["site_ids"]
        == by_id[findings[1].id]["properties"]["site_ids"]
    )
    assert (
        by_id[findings[2].id]["properties"]["site_ids"]
        != by_id[findings[0].id]["properties"]["site_ids"]
    )


def test_filters_by_grade_and_time(
    office_db: tuple[str, list[Finding], str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, findings, _ = office_db
    urgent = json.loads(_export(capsys, db, "--format", "geojson", "--min-grade", "3"))
    assert {f["properties"]["id"] for f in urgent["features"]} == {findings[0].id, findings[1].id}
    recent = json.loads(_export(capsys, db, "--format", "geojson", "--since", "2024-05-01"))
    assert {f["properties"]["id"] for f in recent["features"]} == {
        f.id for f in findings if f.captured_at_utc >= T0
    }
    later = json.loads(
        _export(capsys, db, "--format", "geojson", "--since", "2024-05-01T08:30:00+00:00")
    )
    assert {f["properties"]["id"] for f in later["features"]} == {
        findings[1].id, findings[2].id, findings[4].id,
    }  # fmt: skip


def test_csv_has_the_documented_columns(
    office_db: tuple[str, list[Finding], str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, findings, _ = office_db
    rows = list(csv.DictReader(io.StringIO(_export(capsys, db, "--format", "csv"))))
    assert tuple(rows[0].keys()) == FINDING_COLUMNS
    assert rows[0]["site_ids"] and rows[0]["site_ids"].isdigit()  # one site: its id
    assert [r["id"] for r in rows] == [
        f.id for f in sorted(findings, key=lambda f: f.captured_at_utc)
    ]
    unlocated = next(r for r in rows if r["id"] == findings[4].id)
    assert unlocated["lat_deg"] == "" and unlocated["lon_deg"] == ""
    located = next(r for r in rows if r["id"] == findings[2].id)
    assert float(located["lat_deg"]) == pytest.approx(35.61)


def test_sites_export_counts_sightings_across_vehicles(
    office_db: tuple[str, list[Finding], str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, findings, image_path = office_db
    out = tmp_path / "sites.csv"
    _export(capsys, db, "--format", "csv", "--sites", "--output", str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert tuple(rows[0].keys()) == SITE_COLUMNS
    pothole = next(r for r in rows if r["type_code"] == "D40")
    assert pothole["sightings"] == "2" and pothole["max_grade"] == "3"
    assert sorted(pothole["vehicles"].split(",")) == ["veh-1", "veh-2"]
    assert pothole["first_seen_utc"].startswith("2024-05-01T08:00")
    assert pothole["last_seen_utc"].startswith("2024-05-02T08:00")
    assert pothole["last_finding_id"] == findings[1].id
    assert len(rows) == 3  # pothole, crack, the old one; the unlocated finding has no site
    doc = json.loads(_export(capsys, db, "--format", "geojson", "--sites", "--min-grade", "3"))
    assert [f["properties"]["type_code"] for f in doc["features"]] == ["D40"]
    assert doc["features"][0]["properties"]["image_path"] is None  # newest sighting: no image
    assert image_path  # the first sighting's image is on the finding export instead


def test_export_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], office_db: tuple[str, list[Finding], str]
) -> None:
    missing = tmp_path / "nope.sqlite3"
    assert main(["office", "export", "--db", str(missing), "--format", "csv"]) == 1
    assert str(missing) in capsys.readouterr().err
    db, _, _ = office_db
    assert main(["office", "export", "--db", str(db), "--format", "csv", "--since", "May"]) == 2
    assert "--since 'May'" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x07" * 4096)
    assert main(["office", "export", "--db", str(corrupt), "--format", "csv"]) == 1
    assert str(corrupt) in capsys.readouterr().err
