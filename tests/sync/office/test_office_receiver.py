"""The office receiver: hostile input over a real broker, damage sites, redelivery on failure."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.wire.serialize import finding_to_dict
from sync.office.messages import MAX_JSON_BYTES, MessageHandler
from sync.office.store import SqliteStore as OfficeStore
from sync.office.store_api import open_store
from sync.payloads import finding_payload

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office, wait_until_office_subscribed
from support.sync_data import make_finding, road_jpegs

P = "roadpatrol/v1"


def _raw_client(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, topic: str, payload: bytes, content_type: str | None = None):
    props = None
    if content_type is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
    info = client.publish(topic, payload, qos=1, properties=props)
    info.wait_for_publish(5)


def _good_finding(vehicle: str = "veh-x", **kw: object) -> dict:
    return json.loads(finding_payload(finding_to_dict(make_finding(vehicle, 1, grade=3, **kw))))


def test_hostile_payloads_are_skipped_with_a_log_line_and_the_database_survives(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.office.receiver")
    jpeg = road_jpegs(1, side_px=64)[0]
    good = _good_finding()
    fid = good["id"]
    wrong_schema = {**good, "schema": {"name": "roadpatrol.finding", "version": 99}}
    wrong_types = {**good, "grade": "3", "seq": -1}
    traversal = {**good, "id": "../../../etc/passwd"}
    other_vehicle = _good_finding("veh-y")
    huge = json.dumps({**good, "model_id": "x" * (MAX_JSON_BYTES + 10)}).encode()
    hostile: list[tuple[str, bytes, str | None]] = [
        (f"{P}/veh-x/finding", b"this is not json {", None),
        (f"{P}/veh-x/finding", b"\xff\xfe\x00garbage", None),
        (f"{P}/veh-x/finding", json.dumps(wrong_schema).encode(), None),
        (f"{P}/veh-x/finding", json.dumps(wrong_types).encode(), None),
        (f"{P}/veh-x/finding", json.dumps(traversal).encode(), None),
        (f"{P}/veh-x/finding", json.dumps(other_vehicle).encode(), None),  # spoofed vehicle
        (f"{P}/veh-x/finding", huge, None),
        (f"{P}/veh-x/finding", b'{"schema": NaN}', None),
        (f"{P}/veh-x/finding", b"[" * 50_000 + b"]" * 50_000, None),
        (f"{P}/veh-x/finding", b"[1, 2, 3]", None),
        (f"{P}/veh-x/image/..", jpeg, "image/jpeg"),
        (f"{P}/veh-x/image/{fid}/../../x", jpeg, "image/jpeg"),
        (f"{P}/../image/{fid}", jpeg, "image/jpeg"),
        (f"{P}/veh-x/image/{fid}", b"\x89PNG\r\n\x1a\nnot a jpeg", "image/jpeg"),
        (f"{P}/veh-x/image/{fid}", jpeg, "text/html"),
        (f"{P}/veh-x/track", b'{"schema": {"name": "roadpatrol.track", "version": 1}}', None),
        (f"{P}/veh-x/status", b'{"online": "yes"}', None),
        (f"{P}/veh-x/firmware", b"{}", None),
        (f"{P}/veh-x", b"{}", None),
    ]
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
        raw = _raw_client(broker.port)
        try:
            for topic, payload, content_type in hostile:
                _publish(raw, topic, payload, content_type)
            _publish(raw, f"{P}/veh-x/finding", json.dumps(good).encode())
            _publish(raw, f"{P}/veh-x/image/{fid}", jpeg, "image/jpeg")
        finally:
            raw.disconnect()
            raw.loop_stop()
        assert wait_until(lambda: office.store.counts().images == 1, 10)
        stats = office.receiver.stats
        assert stats.rejected == len(hostile), caplog.text
        assert office.receiver.connected, "the receiver keeps running"
        assert office.store.finding_ids() == {fid}
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped message on")]
    assert len(skipped) == len(hostile)
    assert all("\n" not in r.getMessage() for r in skipped)
    db = sqlite3.connect(tmp_path / "office" / "office.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    written = [p for p in (tmp_path / "office").rglob("*") if p.is_file()]
    images = [p for p in written if p.suffix == ".jpg"]
    assert images == [tmp_path / "office" / "images" / "veh-x" / f"{fid}.jpg"]
    assert images[0].read_bytes() == jpeg
    assert not (tmp_path / "etc").exists()


def _handler(db: str, tmp_path: Path, radius_m: float = 5.0) -> MessageHandler:
    store = open_store(db, tmp_path / "images", site_radius_m=radius_m)
    return MessageHandler(store)


def test_findings_of_one_type_within_a_few_metres_form_one_site_across_vehicles(
    store_db: str, tmp_path: Path
) -> None:
    handler = _handler(store_db, tmp_path)
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    lat, lon = 35.600000, 140.100000
    metre_lat = 1 / 111_195  # degrees of latitude per metre

    def send(vehicle: str, grade: int, type_code: str, dlat_m: float, hours: int) -> dict:
        f = make_finding(vehicle, hours, grade=grade, type_code=type_code,
                         lat_deg=lat + dlat_m * metre_lat, lon_deg=lon,
                         captured_at_utc=t0 + timedelta(hours=hours))  # fmt: skip
        payload = finding_payload(finding_to_dict(f))
        assert handler.handle(f"{P}/{vehicle}/finding", payload) == "finding"
        return json.loads(payload)

    first = send("veh-1", 3, "D40", 0.0, 0)
    send("veh-2", 2, "D40", 3.0, 24)  # another vehicle, next day, 3 m further
    send("veh-1", 1, "D00", 1.0, 1)  # a crack at the same place is another site
    send("veh-3", 3, "D40", 40.0, 2)  # 40 m away: another pothole
    # A repeat delivery is no new sighting.
    assert handler.handle(f"{P}/veh-1/finding", json.dumps(first).encode()) == "duplicate"

    rows = handler.store.query(
        "SELECT type_code, sightings, max_grade, first_seen_utc, last_seen_utc, lat_deg "
        "FROM sites ORDER BY type_code, lat_deg"
    )
    got = [(r[0], r[1], r[2], r[3][:13], r[4][:13]) for r in rows]
    assert got == [
        ("D00", 1, 1, "2024-05-01T09", "2024-05-01T09"),
        ("D40", 2, 3, "2024-05-01T08", "2024-05-02T08"),
        ("D40", 1, 3, "2024-05-01T10", "2024-05-01T10"),
    ]
    assert rows[1][5] == pytest.approx(lat + 1.5 * metre_lat, abs=1e-9)  # mean of both passes
    counts = handler.store.counts()
    assert (counts.findings, counts.deliveries, counts.sites) == (4, 5, 3)
    handler.store.close()


def test_a_message_that_cannot_be_stored_is_not_acked_and_arrives_later(
    broker: Broker, tmp_path: Path
) -> None:
    jpeg = road_jpegs(1, side_px=64)[0]
    good = _good_finding()
    office_dir = tmp_path / "office"
    with Office(office_dir, mqtt_cfg(broker.port)) as office:
        images = office_dir / "images"
        shutil.rmtree(images)
        images.write_bytes(b"")  # a file where the folder should be: every image write fails
        raw = _raw_client(broker.port)
        try:
            _publish(raw, f"{P}/veh-x/finding", json.dumps(good).encode())
            _publish(raw, f"{P}/veh-x/image/{good['id']}", jpeg, "image/jpeg")
        finally:
            raw.disconnect()
            raw.loop_stop()
        assert wait_until(lambda: office.receiver.stats.store_failures >= 1, 10)
        assert office.store.counts().images == 0
        os.remove(images)
        images.mkdir()
        assert wait_until(lambda: office.store.counts().images == 1, 15)
        assert (images / "veh-x" / f"{good['id']}.jpg").read_bytes() == jpeg
        assert office.store.counts().findings == 1


@pytest.mark.slow
def test_office_receive_cli_stores_until_signalled_and_reports_counts(
    broker: Broker, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from support.sync_data import fill_outbox

    db, images = tmp_path / "office.sqlite3", tmp_path / "images"
    cmd = [sys.executable, "-m", "edge", "office", "receive", "--broker",
           f"127.0.0.1:{broker.port}", "--db", str(db), "--images", str(images)]  # fmt: skip
    office = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_office_subscribed(broker.port, db)
        findings = fill_outbox(tmp_path / "data", "veh-cli", 4, road_jpegs(2, side_px=32))
        drain = subprocess.run(
            [sys.executable, "-m", "edge", "sync", "drain", "--data-dir", str(tmp_path / "data"),
             "--broker", f"127.0.0.1:{broker.port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert drain.returncode == 0, drain.stderr
        store = OfficeStore(db, None, read_only=True)
        assert wait_until(lambda: store.counts().images == 4, 15)
        assert store.finding_ids() == {f.id for f in findings}
        store.close()
    finally:
        office.send_signal(signal.SIGTERM)
        out, err = office.communicate(timeout=20)
    assert office.returncode == 0, err
    stats = json.loads(out)
    assert (stats["findings"], stats["images"], stats["rejected"]) == (4, 4, 0)
    assert "connected to 127.0.0.1" in err

    misuse = subprocess.run(
        [sys.executable, "-m", "edge", "office", "receive", "--broker", "localhost",
         "--db", str(db), "--images", str(images)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert misuse.returncode == 2 and "--broker 'localhost'" in misuse.stderr
