"""The office on PostgreSQL + PostGIS: migration in place, site grouping under concurrent
receivers, idempotent upserts across receivers, and the read-only GIS views."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from edge.outbox.queries import TrackPoint
from edge.wire.serialize import finding_to_dict
from sync.office.export import FINDING_COLUMNS, SITE_COLUMNS
from sync.office.messages import MessageHandler
from sync.office.pg_schema import migrate_pg
from sync.office.pg_store import PostgresStore
from sync.office.store_api import StoreError, open_store
from sync.payloads import finding_payload, track_payload

from support.broker import wait_until
from support.pg import PgCluster
from support.sync_data import make_finding

P = "roadpatrol/v1"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
METRE_LAT = 1 / 111_195


def _payload(vehicle: str, seq: int, north_m: float, *, lon: float = 140.1) -> bytes:
    f = make_finding(vehicle, seq, grade=3, type_code="D40", lat_deg=35.6 + north_m * METRE_LAT,
                     lon_deg=lon, captured_at_utc=T0 + timedelta(minutes=seq))  # fmt: skip
    return finding_payload(finding_to_dict(f))


def test_an_older_database_is_upgraded_in_place(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate_pg(conn, 1) == 0  # a database as the first schema made it
        doc = json.loads(_payload("veh-old", 1, 0.0))
        conn.execute(
            "INSERT INTO findings (id, vehicle_id, boot_id, seq, captured_at_utc, lat_deg, "
            "lon_deg, grade, type_codes, model_id, origin, sightings, payload, received_at_utc) "
            "VALUES (%s,'veh-old','b',1,'2024-05-01T08:00:00Z',35.6,140.1,3,'D40','m','model',1,"
            "%s,'2024-05-01T08:00:01Z')",
            (doc["id"], json.dumps(doc)),
        )
        assert conn.execute("SELECT to_regclass('parked_images')").fetchone() == (None,)
    # A reader never writes: an older database is read as it is.
    reader = open_store(pg_url, None, read_only=True)
    assert reader.finding_ids() == {doc["id"]}
    assert not reader.has_table("parked_images")
    reader.close()
    store = open_store(pg_url, tmp_path / "images")
    assert store.query("SELECT value FROM meta WHERE key='schema_version'")[0][0] == "2"
    assert store.finding_ids() == {doc["id"]}
    assert store.has_table("parked_images")
    view = store.query("SELECT id, ST_AsText(geom) AS wkt FROM gis.findings")
    assert [(r["id"], r["wkt"]) for r in view] == [(doc["id"], "POINT(140.1 35.6)")]
    store.close()
    again = open_store(pg_url, tmp_path / "images")  # a second start finds nothing to do
    assert again.query("SELECT count(*) FROM meta")[0][0] == 1
    again.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(pg_url, tmp_path / "images")


def _waiting_on_advisory_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND wait_event = 'advisory' AND datname = current_database()"
        ).fetchone()
    return bool(row and row[0] >= 1)


def test_a_second_receiver_waits_for_the_first_sighting_and_joins_its_site(
    pg_url: str, tmp_path: Path
) -> None:
    """Receiver A has stored a sighting and not committed yet when receiver B stores another
    sighting of the same pothole 2 m away: B must wait for A, then join A's site."""
    a, b = (MessageHandler(open_store(pg_url, tmp_path / "images")) for _ in range(2))
    a_stored, a_may_commit = threading.Event(), threading.Event()

    def receiver_a() -> None:
        with a.store.transaction():  # the store's own transaction joins this one
            assert a.handle(f"{P}/veh-a/finding", _payload("veh-a", 1, 0.0)) == "finding"
            a_stored.set()
            assert a_may_commit.wait(30)

    thread_a = threading.Thread(target=receiver_a)
    thread_a.start()
    assert a_stored.wait(30)
    results: list[str] = []
    thread_b = threading.Thread(
        target=lambda: results.append(b.handle(f"{P}/veh-b/finding", _payload("veh-b", 2, 2.0)))
    )
    thread_b.start()
    try:
        # B blocks on A's lock of the pothole's grid cell: without it, B would found a site.
        assert wait_until(lambda: _waiting_on_advisory_lock(pg_url), 20)
        assert results == []
    finally:
        a_may_commit.set()
        thread_a.join(30)
        thread_b.join(30)
    assert results == ["finding"]
    sites = a.store.query("SELECT type_code, sightings FROM sites")
    assert [tuple(r) for r in sites] == [("D40", 2)]
    a.store.close()
    b.store.close()


def test_two_receivers_fed_the_same_damages_at_once_end_with_one_site_each(
    pg_url: str, tmp_path: Path
) -> None:
    """Twenty potholes 100 m apart; each seen by two vehicles 1 m apart, both sightings handed
    to two receivers released together."""
    handlers = [MessageHandler(open_store(pg_url, tmp_path / "images")) for _ in range(2)]
    places = 20
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def feed(i: int) -> None:
        try:
            for n in range(places):
                start.wait(30)
                payload = _payload(f"veh-{i}", n, 100.0 * n + i)
                assert handlers[i].handle(f"{P}/veh-{i}/finding", payload) == "finding"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    rows = handlers[0].store.query("SELECT sightings, count(*) FROM sites GROUP BY sightings")
    assert [tuple(r) for r in rows] == [(2, places)]
    for h in handlers:
        h.store.close()


def test_a_finding_delivered_to_two_receivers_is_stored_once(pg_url: str, tmp_path: Path) -> None:
    """After a receiver dies before its PUBACK, the broker hands the message to another member
    of the group: both may store it at the same time."""
    handlers = [MessageHandler(open_store(pg_url, tmp_path / "images")) for _ in range(2)]
    payloads = [_payload("veh-d", n, 50.0 * n) for n in range(10)]
    start = threading.Barrier(2)
    results: list[list[str]] = [[], []]

    def feed(i: int) -> None:
        for payload in payloads:
            start.wait(30)
            results[i].append(handlers[i].handle(f"{P}/veh-d/finding", payload))

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for first, second in zip(*results, strict=True):
        assert sorted((first, second)) == ["duplicate", "finding"]
    counts = handlers[0].store.counts()
    assert (counts.findings, counts.deliveries, counts.sites) == (10, 20, 10)
    for h in handlers:
        h.store.close()


def test_gis_views_have_the_export_columns_and_a_read_only_role_reads_them(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_url, tmp_path / "images")
    handler = MessageHandler(store)
    for n in range(3):
        handler.handle(f"{P}/veh-g/finding", _payload("veh-g", n, 1.0 * n))
    points = [
        TrackPoint(id=s, time_utc=T0 + timedelta(seconds=s), lat_deg=35.6 + s * METRE_LAT,
                   lon_deg=140.1, speed_mps=8.0, track_deg=0.0, hdop=0.9, fix_mode=3)
        for s in range(4)
    ]  # fmt: skip
    handler.handle(f"{P}/veh-g/track", track_payload("veh-g", "boot", 1, points))
    columns = {
        view: [r[0] for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'gis' "
            "AND table_name = ? ORDER BY ordinal_position", (view,))]
        for view in ("findings", "damage_sites", "patrol_tracks")
    }  # fmt: skip
    assert columns["findings"] == [*FINDING_COLUMNS, "geom"]
    assert columns["damage_sites"] == [*SITE_COLUMNS, "geom"]
    site = store.query("SELECT sightings, office_grade, ST_SRID(geom) FROM gis.damage_sites")
    assert [tuple(r) for r in site] == [(3, 3, 4326)]
    track = store.query("SELECT vehicle_id, day, points, ST_NPoints(geom), "
                        "GeometryType(geom) FROM gis.patrol_tracks")  # fmt: skip
    assert [tuple(r) for r in track] == [("veh-g", "2024-05-01", 4, 4, "LINESTRING")]
    store.close()
    # The README's read-only role: it reads the views and cannot write anything.
    dbname = urlsplit(pg_url).path.lstrip("/")
    pg_cluster.psql(dbname, "DO $$BEGIN CREATE ROLE qgis_reader LOGIN; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END$$")  # fmt: skip
    pg_cluster.psql(dbname, "GRANT USAGE ON SCHEMA gis TO qgis_reader; "
                    "GRANT SELECT ON ALL TABLES IN SCHEMA gis TO qgis_reader")  # fmt: skip
    reader_url = pg_url.replace("postgres@", "qgis_reader@")
    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM gis.findings").fetchone() == (3,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM public.findings")


def test_a_database_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://office:s3cret@/nodb?host={tmp_path}&port=1&connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url, None, read_only=True, connect_timeout_s=3)
    assert "s3cret" not in str(caught.value) and "office:***@" in str(caught.value)


@pytest.mark.slow
def test_office_commands_name_a_bad_database_or_group_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def office(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge", "office", *args],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    url = f"postgresql://office:s3cret@/nodb?host={tmp_path}&port=1&connect_timeout=1"
    bad = office("export", "--db", url, "--format", "csv")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "office:***@" in bad.stderr and "s3cret" not in bad.stderr
    group = office("receive", "--broker", "127.0.0.1:1", "--db", str(tmp_path / "o.sqlite3"),
                   "--images", str(tmp_path / "i"), "--shared-group", "a/b")  # fmt: skip
    assert group.returncode == 2 and "--shared-group 'a/b'" in group.stderr
