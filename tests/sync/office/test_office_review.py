"""`roadpatrol office review`: the office confirms or corrects findings received over MQTT,
and `office export` carries the verdicts (per finding and per damage site)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from sync.drain import drain

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office
from support.office_review import (
    OLD_FINDING_COLUMNS,
    OLD_SITE_COLUMNS,
    REVIEW_FIELDS,
    VEHICLE,
    ReceivedOffice,
    apply_reviews,
    cli,
    sql,
)
from support.sync_data import open_outbox


def _db(office: ReceivedOffice) -> str:
    return office.db


def _features(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> dict[str, dict]:
    rc, out, err = cli(capsys, "office", "export", "--db", str(db), "--format", "geojson", *args)
    assert rc == 0, err
    return {f["properties"]["id"]: f["properties"] for f in json.loads(out)["features"]}


@pytest.mark.slow
def test_list_puts_grade_3_first_and_review_changes_what_waits(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(_db(office))
    rc, out, _ = cli(capsys, "office", "review", "--db", db, "--list", "--json")
    assert rc == 0
    queue = json.loads(out)
    by_grade = sorted(office.findings, key=lambda f: (-f.grade, f.captured_at_utc))
    assert [r["id"] for r in queue] == [f.id for f in by_grade]
    rc, out, _ = cli(capsys, "office", "review", "--db", db, "--list", "--min-grade", "2", "--json")
    assert {r["id"] for r in json.loads(out)} == {f.id for f in office.findings if f.grade >= 2}

    ids = apply_reviews(capsys, office)
    rc, out, _ = cli(capsys, "office", "review", "--db", db, "--list", "--unreviewed", "--json")
    assert [r["id"] for r in json.loads(out)] == [ids[7]]
    rc, out, _ = cli(capsys, "office", "review", "--db", db, "--list", "--json")
    after = json.loads(out)
    # The office grade orders the list now: the crack corrected to a pothole leads, the two
    # dismissed potholes go to the end.
    assert {r["id"] for r in after[:2]} == {ids[2], ids[4]}
    assert {r["id"] for r in after[-3:]} == {ids[0], ids[1], ids[5]}
    assert all(r["office_grade"] == 0 for r in after[-3:])
    rc, out, _ = cli(capsys, "office", "review", "--db", db, "--list")
    lines = out.splitlines()
    assert len(lines) == len(ids) and lines[0].split()[0] in {ids[2], ids[4]}
    assert "not_damage" in lines[-1] or "corrected" in lines[-1]


def test_export_carries_the_review_beside_what_the_vehicle_said(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(office)
    before = _features(capsys, db)
    assert all(before[f.id][k] is None for f in office.findings for k in REVIEW_FIELDS[:-1])
    assert {i: p["office_grade"] for i, p in before.items()} == {
        f.id: f.grade for f in office.findings
    }
    ids = apply_reviews(capsys, office)
    props = _features(capsys, db)
    dismissed = props[ids[0]]
    assert (dismissed["grade"], dismissed["type_codes"]) == (3, "D40")  # the vehicle's, kept
    assert (dismissed["review_verdict"], dismissed["reviewed_grade"]) == ("not_damage", None)
    assert (dismissed["reviewed_by"], dismissed["office_grade"]) == ("ken", 0)
    corrected = props[ids[2]]
    assert (corrected["grade"], corrected["reviewed_grade"], corrected["reviewed_types"]) == (
        2, 3, "D40",
    )  # fmt: skip
    assert corrected["office_grade"] == 3 and corrected["reviewed_by"] == "anna"
    twice = props[ids[3]]
    assert (twice["reviewed_grade"], twice["reviewed_types"], twice["reviewed_by"]) == (
        1, "D00,D10", "yuki",
    )  # fmt: skip
    confirmed = props[ids[4]]
    assert (confirmed["review_verdict"], confirmed["reviewed_grade"]) == ("confirmed", None)
    assert confirmed["office_grade"] == 3
    assert props[ids[5]]["office_grade"] == 0 and props[ids[5]]["review_verdict"] == "corrected"
    assert all(props[ids[7]][k] is None for k in REVIEW_FIELDS[:-1])
    assert props[ids[7]]["office_grade"] == 1
    assert props[ids[2]]["reviewed_at_utc"] >= props[ids[0]]["reviewed_at_utc"] > "2024"

    urgent = _features(capsys, db, "--min-grade", "3")
    assert set(urgent) == {ids[2], ids[4]}  # the office grade filters, not the vehicle's

    rc, out, _ = cli(capsys, "office", "export", "--db", str(db), "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0].keys()) == OLD_FINDING_COLUMNS + REVIEW_FIELDS + ["review_note"]
    row = next(r for r in rows if r["id"] == ids[0])
    assert (row["grade"], row["review_verdict"], row["office_grade"]) == ("3", "not_damage", "0")
    assert row["reviewed_grade"] == "" and row["reviewed_types"] == ""

    history = sql(
        office,
        "SELECT verdict, grade, type_codes, reviewer FROM reviews WHERE finding_id=? ORDER BY id",
        (ids[3],),
    )
    assert history == [("corrected", 2, "D00,D10", "anna"), ("corrected", 1, "D00,D10", "yuki")]


def test_sites_take_the_reviews_and_a_dismissed_site_is_not_reported(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(_db(office))

    def sites(*args: str) -> list[dict[str, str]]:
        rc, out, err = cli(capsys, "office", "export", "--db", db, "--format", "csv", "--sites",
                           *args)  # fmt: skip
        assert rc == 0, err
        return list(csv.DictReader(io.StringIO(out)))

    before = sites()
    assert list(before[0].keys()) == OLD_SITE_COLUMNS + REVIEW_FIELDS + ["reviewed_sightings"]
    pothole = next(s for s in before if s["type_code"] == "D40" and s["sightings"] == "2")
    assert pothole["office_grade"] == pothole["max_grade"] == "3"
    ids = apply_reviews(capsys, office)
    after = sites()
    kept = {s["site_id"]: s for s in after}
    assert pothole["site_id"] not in kept  # both sightings dismissed
    # The crack corrected to a pothole left its D20 site (now empty, gone) for a D40 site.
    moved = [s for s in after if s["last_finding_id"] == ids[2]]
    assert [(s["type_code"], s["sightings"], s["max_grade"], s["office_grade"]) for s in moved] == [
        ("D40", "1", "3", "3")
    ]
    multi = {s["type_code"]: s for s in after if s["last_finding_id"] == ids[4]}
    assert set(multi) == {"D00", "D40"}
    assert (multi["D40"]["office_grade"], multi["D40"]["review_verdict"]) == ("3", "confirmed")
    assert multi["D00"]["office_grade"] == "1" and multi["D40"]["reviewed_sightings"] == "1"
    crack = {s["type_code"]: s for s in after if s["last_finding_id"] == ids[3]}
    assert set(crack) == {"D00", "D10"}  # corrected to D00+D10: it also formed a D10 site
    assert (crack["D00"]["max_grade"], crack["D00"]["office_grade"]) == ("1", "1")
    assert (crack["D10"]["max_grade"], crack["D10"]["reviewed_by"]) == ("1", "yuki")
    unreviewed = next(s for s in after if s["last_finding_id"] == ids[7])
    assert unreviewed["review_verdict"] == "" and unreviewed["office_grade"] == "1"
    assert [s["type_code"] for s in sites("--min-grade", "3")] == ["D40", "D40"]
    # Gone: the pothole, the D20 and the grade-0 D10 sites; new: a D40 and a D10 site.
    assert len(after) == len(before) - 3 + 2
    if office.db.startswith("postgresql://"):
        # QGIS's view of the sites says what the export says (dismissed: office grade 0).
        cols = ", ".join(OLD_SITE_COLUMNS + REVIEW_FIELDS + ["reviewed_sightings"])
        view = sql(office, f"SELECT {cols} FROM gis.damage_sites WHERE office_grade > 0")
        as_csv = {tuple("" if v is None else str(v) for v in row) for row in view}
        assert as_csv == {tuple(s.values()) for s in after}


def test_bad_reviews_name_the_value_exit_2_and_write_nothing(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(_db(office))
    fid = office.findings[2].id
    cases = [
        (["0190b0b0-0000-7000-8000-000000000000", "--confirm"], "0190b0b0-0000-7000-8000"),
        ([fid, "--grade", "2", "--types", "D20,D99"], "'D99'"),
        ([fid, "--grade", "4"], "--grade 4"),
        ([fid, "--grade", "-1"], "--grade -1"),
        ([fid, "--grade", "0", "--types", "D40"], "--grade 0"),
        ([fid, "--confirm", "--types", "D40"], "--types D40"),
        ([fid], fid),
        ([fid, "--list"], "--list"),
        (["--list", "--min-grade", "5"], "--min-grade 5"),
    ]
    for args, named in cases:
        rc, _, err = cli(capsys, "office", "review", "--db", db, *args)
        assert rc == 2, (args, err)
        assert named in err, (args, err)
    with pytest.raises(SystemExit) as both:  # argparse: two verdicts at once
        cli(capsys, "office", "review", "--db", db, fid, "--confirm", "--not-damage")
    assert both.value.code == 2
    assert sql(office, "SELECT COUNT(*) FROM reviews") == [(0,)]
    missing = tmp_path / "nope.sqlite3"
    rc, _, err = cli(capsys, "office", "review", "--db", str(missing), "--list")
    assert rc == 1 and str(missing) in err
    rc, _, err = cli(capsys, "office", "review", "--db", str(missing), fid, "--confirm")
    assert rc == 1 and str(missing) in err and not missing.exists()


def test_a_redelivery_after_review_keeps_the_review(
    broker: Broker, office: ReceivedOffice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ids = apply_reviews(capsys, office)
    db = _db(office)
    reviewed = _features(capsys, db)
    # The vehicle's outbox restored from a backup: every finding and image is sent again.
    resend = tmp_path / "resend"
    shutil.copytree(office.outbox_backup, resend)
    with Office(office.office_dir, mqtt_cfg(broker.port), client_id="office-again",
                db=office.db) as again:  # fmt: skip
        with open_outbox(resend) as outbox:
            result = drain(mqtt_cfg(broker.port), outbox, VEHICLE, timeout_s=60)
        assert result.remaining == 0 and result.sent_findings == len(ids)
        assert wait_until(lambda: again.store.counts().deliveries == 2 * len(ids), 20)
        assert again.store.counts().findings == len(ids)
        assert again.receiver.stats.duplicates >= len(ids)
    after = _features(capsys, db)
    for fid in ids:
        assert {k: after[fid][k] for k in REVIEW_FIELDS} == {
            k: reviewed[fid][k] for k in REVIEW_FIELDS
        }
    assert after[ids[0]]["review_verdict"] == "not_damage"
    assert sql(office, "SELECT COUNT(*) FROM reviews") == [(8,)]


def test_an_office_database_from_before_reviews_keeps_working(
    office: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    if office.db.startswith("postgresql://"):
        pytest.skip("a SQLite file from before reviews; PostgreSQL: test_office_pg")
    db = _db(office)
    old = sqlite3.connect(db)
    # The schema as it was before reviews existed: version 1, no reviews, no parked images.
    old.executescript(
        "DROP TABLE reviews; DROP TABLE parked_images; DROP INDEX site_findings_site; "
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    old.commit()
    old.close()
    props = _features(capsys, db)  # read-only: must not add the table
    assert set(props) == {f.id for f in office.findings}
    assert all(p["review_verdict"] is None for p in props.values())
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "reviews" not in tables
    rc, out, _ = cli(capsys, "office", "review", "--db", str(db), "--list", "--unreviewed",
                     "--json")  # fmt: skip
    assert rc == 0 and len(json.loads(out)) == len(office.findings)

    fid = office.findings[3].id
    rc, _, err = cli(capsys, "office", "review", "--db", str(db), fid, "--not-damage")
    assert rc == 0, err
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM findings").fetchone()[0] == len(office.findings)
    assert conn.execute("SELECT verdict FROM reviews").fetchall() == [("not_damage",)]
    # Upgraded in place to schema 2 by the first writable open, nothing lost.
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    assert conn.execute("SELECT COUNT(*) FROM parked_images").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert _features(capsys, db)[fid]["office_grade"] == 0
