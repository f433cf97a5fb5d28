"""The publisher against a real mosquitto: order, schemas, outages, half-open links, refusals.

Every test runs twice, the vehicle speaking MQTT 5 (``mqtt5``) and MQTT 3.1.1 (``mqtt311``);
the office receiver stays on MQTT 5. Where the versions differ, each asserts its own: 3.1.1
has no PUBLISH properties, so a message carries no content type and an image no user
properties (its topic names vehicle and finding, its EXIF the whole record), and a 3.1.1
broker acknowledges a publish it refuses as if it had taken it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from edge.outbox.exif_finding import finding_from_jpeg
from edge.types import Fix, FixMode
from edge.wire.validate import IMAGE_SCHEMA_TAG, schema_errors
from sync.publisher import Publisher

from support.broker import Broker, free_port, mqtt_cfg, wait_until
from support.collect import Collector, Office
from support.proxy import TcpProxy
from support.sync_data import fill_outbox, make_finding, open_outbox, road_jpegs

VEHICLE = "veh-7"


@pytest.fixture(params=["5", "3.1.1"], ids=["mqtt5", "mqtt311"])
def protocol(request: pytest.FixtureRequest) -> str:
    """The vehicle's ``mqtt.protocol``."""
    version: str = request.param
    return version


def _findings_in(messages: list[tuple[str, bytes, dict[str, object], bool]]) -> list[dict]:
    return [json.loads(p) for t, p, _, _ in messages if t.endswith("/finding")]


def test_sends_grade_3_first_images_after_their_findings_and_every_payload_fits_its_schema(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    findings = fill_outbox(tmp_path / "data", VEHICLE, 40, road_jpegs(4, side_px=96))
    with open_outbox(tmp_path / "data") as outbox:
        for i in range(5):
            fix = Fix(
                mono_ns=i,
                time_utc=findings[0].captured_at_utc,
                lat_deg=35.6 + i * 1e-4,
                lon_deg=140.1,
                mode=FixMode.FIX_3D,
                speed_mps=9.0,
                track_deg=45.0,
            )
            assert outbox.add_track_point(fix) is not None
        collector = Collector(broker.port)
        # A window of 4 makes the order visible: only the outbox's order decides what goes next.
        cfg = mqtt_cfg(broker.port, inflight_window=4, protocol=protocol)
        publisher = Publisher(cfg, outbox, VEHICLE)
        publisher.start()
        try:
            assert wait_until(lambda: outbox.summary().pending_images == 0, 30)
            assert wait_until(lambda: outbox.summary().pending_track_points == 0, 10)
            link = publisher.link_status()
        finally:
            publisher.stop()
        # The broker forwards the closing 'offline' status to the collector asynchronously.
        wait_until(lambda: _last_status_online(collector) is False, 10)
        collector_msgs = collector.snapshot()
        collector.close()
        summary = outbox.summary()

    assert summary.pending == 0 and summary.pending_images == 0
    assert link.connected and link.enabled and link.last_error is None
    assert link.last_acked_id in {f.id for f in findings}

    sent = _findings_in(collector_msgs)
    assert sorted(f["id"] for f in sent) == sorted(f.id for f in findings)
    grades = [f["grade"] for f in sent]
    assert grades == sorted(grades, reverse=True), "grade 3 first, then by grade"

    mqtt5 = protocol == "5"
    by_id = {f.id: f for f in findings}
    position_of = {}
    for index, (topic, payload, meta, _) in enumerate(collector_msgs):
        kind = topic.split("/")[3]
        if kind in ("finding", "track", "status"):
            # 3.1.1 has no properties at all: no content type, no payload format indicator.
            assert meta == {"content_type": "application/json" if mqtt5 else None, "user": {}}
        if kind == "finding":
            doc = json.loads(payload)
            assert schema_errors("finding", doc) == []
            assert doc["schema"] == {"name": "roadpatrol.finding", "version": 1}
            assert topic == f"roadpatrol/v1/{VEHICLE}/finding"
            position_of[doc["id"]] = index
        elif kind == "image":
            finding_id = topic.split("/")[4]
            assert position_of[finding_id] < index, "an image only after its finding"
            assert payload.startswith(b"\xff\xd8\xff")
            # Under both versions the picture itself carries its whole record (EXIF).
            in_exif = finding_from_jpeg(payload, "unused")
            expected = by_id[finding_id]
            assert (in_exif.id, in_exif.vehicle_id, in_exif.boot_id, in_exif.seq) == (
                finding_id,
                VEHICLE,
                expected.boot_id,
                expected.seq,
            )
            user = meta["user"]
            assert isinstance(user, dict)
            if mqtt5:
                assert meta["content_type"] == "image/jpeg"
                assert schema_errors("image", user) == []
                assert user["schema"] == IMAGE_SCHEMA_TAG and user["finding_id"] == finding_id
                assert (user["vehicle_id"], user["boot_id"], user["seq"]) == (
                    VEHICLE,
                    expected.boot_id,
                    str(expected.seq),
                )
            else:  # only the topic (vehicle, finding id) and the EXIF say what it is
                assert meta == {"content_type": None, "user": {}}
        elif kind == "track":
            doc = json.loads(payload)
            assert schema_errors("track", doc) == []
            assert [p["lat_deg"] for p in doc["points"]] == [35.6 + i * 1e-4 for i in range(5)]
        elif kind == "status":
            assert schema_errors("status", json.loads(payload)) == []
    statuses = [json.loads(p) for t, p, _, _ in collector_msgs if t.endswith("/status")]
    assert statuses[0]["online"] is True and statuses[-1]["online"] is False
    assert sum(t.split("/")[3] == "image" for t, *_ in collector_msgs) == len(findings)


@pytest.mark.slow
def test_offline_for_a_whole_run_then_the_broker_appears_and_everything_arrives(
    tmp_path: Path, protocol: str
) -> None:
    port = free_port()
    office_cfg = mqtt_cfg(port)
    cfg = mqtt_cfg(port, protocol=protocol)
    office_broker = Broker(tmp_path / "broker", port=port)
    # The office's persistent session exists before the vehicle leaves the depot.
    office_broker.start()
    with Office(tmp_path / "office", office_cfg) as office:
        pass
    office_broker.stop()

    jpegs = road_jpegs(3, side_px=96)
    data_dir = tmp_path / "data"
    early = fill_outbox(data_dir, VEHICLE, 10, jpegs)
    with open_outbox(data_dir) as outbox:
        publisher = Publisher(cfg, outbox, VEHICLE)
        publisher.start()
        try:
            # A shift without a network: findings keep being recorded, the link says why.
            late = [make_finding(VEHICLE, 100 + i, grade=3 - i % 3) for i in range(10)]
            for f in late:
                assert outbox.add(f, jpegs[0])
                time.sleep(0.05)
            assert wait_until(lambda: publisher.link_status().last_error is not None, 5)
            link = publisher.link_status()
            assert not link.connected and link.offline_since_utc is not None
            assert "cannot connect" in (link.last_error or "")
            assert outbox.summary().pending == 20

            office_broker.start()
            assert wait_until(lambda: outbox.summary().pending_images == 0, 30)
            assert publisher.link_status().connected
        finally:
            publisher.stop()
        assert outbox.summary().pending == 0
    try:
        with Office(tmp_path / "office", office_cfg) as office:
            expected = {f.id for f in early + late}
            assert wait_until(lambda: office.store.counts().images == 20, 20)
            assert office.store.finding_ids() == expected
            assert office.store.counts().findings == 20
    finally:
        office_broker.kill()


@pytest.mark.slow
def test_half_open_link_is_detected_and_nothing_is_lost(
    broker: Broker, tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy(broker.port)
    data_dir = tmp_path / "data"
    first = fill_outbox(data_dir, VEHICLE, 5, [])
    cfg = mqtt_cfg(proxy.port, puback_timeout_s=2.0, protocol=protocol)
    try:
        with (
            Office(tmp_path / "office", mqtt_cfg(broker.port)) as office,
            open_outbox(data_dir) as outbox,
        ):
            publisher = Publisher(cfg, outbox, VEHICLE)
            publisher.start()
            try:
                assert wait_until(lambda: outbox.summary().pending == 0, 15)
                proxy.blackhole()  # the link stays up, nothing gets through any more
                late = [make_finding(VEHICLE, 50 + i, grade=2) for i in range(5)]
                for f in late:
                    outbox.add(f, None)
                publisher.wake()
                started = time.monotonic()
                assert wait_until(lambda: publisher.counters.half_open_drops >= 1, 10)
                detected_after_s = time.monotonic() - started
                assert detected_after_s < 2.0 + 3.0, detected_after_s
                # The next attempt may already have replaced it ("no CONNACK"): the log keeps it.
                assert any("link half-open" in r.getMessage() for r in caplog.records)
                assert not publisher.link_status().connected, "the driver sees the link down"
                assert outbox.summary().pending == 5, "nothing acked through a dead link"
                proxy.resume()
                assert wait_until(lambda: outbox.summary().pending == 0, 20)
            finally:
                publisher.stop()
            expected = {f.id for f in first + late}
            assert wait_until(lambda: office.store.finding_ids() == expected, 10)
    finally:
        proxy.stop()


@pytest.mark.slow
def test_connection_dropped_mid_publish_resends_and_office_sees_each_once(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    proxy = TcpProxy(broker.port)
    data_dir = tmp_path / "data"
    findings = fill_outbox(data_dir, VEHICLE, 30, road_jpegs(6))  # full-size frames: ~80 KB
    cfg = mqtt_cfg(proxy.port, inflight_window=8, protocol=protocol)
    status_seen = Collector(broker.port, f"roadpatrol/v1/{VEHICLE}/status")
    try:
        with (
            Office(tmp_path / "office", mqtt_cfg(broker.port)) as office,
            open_outbox(data_dir) as outbox,
        ):
            # The first three connections die after these many bytes: each count lands inside
            # some PUBLISH of a ~80 KB image. Set before the start, so no reconnect outruns it.
            proxy.cut_next_connections([40_000, 150_000, 333_333])
            publisher = Publisher(cfg, outbox, VEHICLE)
            publisher.start()
            try:
                assert wait_until(lambda: outbox.summary().pending_images == 0, 40)
                assert proxy.dropped == 3
                assert publisher.counters.connects >= 4
            finally:
                publisher.stop()
            assert wait_until(lambda: office.store.counts().images == 30, 15)
            assert office.store.finding_ids() == {f.id for f in findings}
            assert office.store.counts().findings == 30
        # The cut connections left without DISCONNECT: the broker published the last will.
        assert wait_until(lambda: _offline_count(status_seen) >= 2, 10), status_seen.snapshot()
    finally:
        status_seen.close()
        proxy.stop()


def test_the_office_stores_the_images_of_either_version(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    """An MQTT 5 office takes 3.1.1 images, which come without any user property."""
    findings = fill_outbox(tmp_path / "data", VEHICLE, 6, road_jpegs(2, side_px=64))
    cfg = mqtt_cfg(broker.port, protocol=protocol)
    with (
        Office(tmp_path / "office", mqtt_cfg(broker.port)) as office,
        open_outbox(tmp_path / "data") as outbox,
    ):
        publisher = Publisher(cfg, outbox, VEHICLE)
        publisher.start()
        try:
            assert wait_until(lambda: outbox.summary().pending_images == 0, 15)
        finally:
            publisher.stop()
        assert wait_until(lambda: office.store.counts().images == 6, 10)
        assert office.store.finding_ids() == {f.id for f in findings}
        for f in findings:
            stored = office.store.image_path_for(VEHICLE, f.id).read_bytes()
            assert finding_from_jpeg(stored, "unused").id == f.id, "each image under its own id"


def test_a_publish_the_broker_refuses_is_kept_under_mqtt5_and_lost_to_the_broker_under_311(
    tmp_path: Path, protocol: str
) -> None:
    """The broker's ACL takes this vehicle's findings and status but not its images. MQTT 5
    says so (PUBACK 0x87): the images stay pending, the link names the reason. A 3.1.1 broker
    acknowledges them as if delivered: only the office's missing receipts can tell."""
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic write roadpatrol/v1/{VEHICLE}/finding\n"
        f"topic write roadpatrol/v1/{VEHICLE}/status\n"
        "topic read roadpatrol/v1/#\n",
        encoding="utf-8",
    )
    broker = Broker(tmp_path / "broker", listener_conf=f"allow_anonymous true\nacl_file {acl}\n")
    broker.start()
    findings = fill_outbox(tmp_path / "data", VEHICLE, 3, road_jpegs(1, side_px=64))
    try:
        collector = Collector(broker.port)
        with open_outbox(tmp_path / "data") as outbox:
            publisher = Publisher(mqtt_cfg(broker.port, protocol=protocol), outbox, VEHICLE)
            publisher.start()
            try:
                assert wait_until(lambda: outbox.summary().pending == 0, 15), "findings go"
                # mosquitto 2.0 (with max_queued_messages 0) also closes the connection after
                # a denied publish, under either version: the refusal must stay the reason.
                if protocol == "5":
                    assert wait_until(lambda: publisher.counters.refused >= 1, 10)
                    link = publisher.link_status()
                    assert link.last_reason == "not_authorised", link.last_error
                    assert "broker refused image" in (link.last_error or "")
                else:
                    assert wait_until(lambda: outbox.summary().pending_images == 0, 10)
                    link = publisher.link_status()
                    assert "refused" not in (link.last_error or ""), link.last_error
            finally:
                publisher.stop()
            summary, awaiting = outbox.summary(), outbox.awaiting_receipt()
            refused = publisher.counters.refused
        images_seen = [t for t, *_ in collector.snapshot() if "/image/" in t]
        collector.close()
    finally:
        broker.kill()
    assert images_seen == [], "the broker let no image through"
    assert awaiting.findings == len(findings)
    if protocol == "5":
        assert summary.pending_images == len(findings) and awaiting.images == 0
    else:
        assert refused == 0
        assert summary.pending_images == 0 and awaiting.images == len(findings)


def test_the_brokers_receive_maximum_is_obeyed_under_mqtt5_and_absent_under_311(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """mosquitto's max_inflight_messages is its Receive Maximum (MQTT 5 only). paho ignores it,
    so the publisher reconnects once with that many on the wire; 3.1.1 has no such limit."""
    broker = Broker(
        tmp_path / "broker", listener_conf="allow_anonymous true\nmax_inflight_messages 4\n"
    )
    broker.start()
    findings = fill_outbox(tmp_path / "data", VEHICLE, 12, road_jpegs(2, side_px=64))
    try:
        with open_outbox(tmp_path / "data") as outbox:
            cfg = mqtt_cfg(broker.port, inflight_window=16, protocol=protocol)
            publisher = Publisher(cfg, outbox, VEHICLE)
            with caplog.at_level(logging.WARNING, logger="sync.publisher"):
                publisher.start()
                try:
                    assert wait_until(lambda: outbox.summary().pending_images == 0, 20)
                    link = publisher.link_status()
                finally:
                    publisher.stop()
            assert outbox.summary().pending == 0
            assert outbox.awaiting_receipt().images == len(findings)
    finally:
        broker.kill()
    said = [r.getMessage() for r in caplog.records if "in flight; reconnecting" in r.getMessage()]
    assert link.connected and link.last_error is None
    if protocol == "5":
        assert len(said) == 1 and said[0].startswith("broker takes 4 in flight; reconnecting")
        assert publisher.counters.connects == 1 and publisher.counters.connect_failures == 1
    else:
        assert said == []
        assert publisher.counters.connects == 1 and publisher.counters.connect_failures == 0


def test_service_publishes_the_recorders_status_retained_and_offline_at_stop(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    from edge.config.loader import AppConfig, VehicleConfig
    from edge.status import GpsStatus, ModelStatus, Status
    from sync import service

    data_dir = tmp_path / "data"
    fill_outbox(data_dir, VEHICLE, 3, [])
    app = AppConfig(
        vehicle=VehicleConfig(vehicle_id=VEHICLE, data_dir=data_dir),
        mqtt=mqtt_cfg(broker.port, status_interval_s=0.5, protocol=protocol),
    )
    snapshot = Status(
        recording=True,
        vehicle_id=VEHICLE,
        model=ModelStatus(model_id="rdd-lite0-1.2.0"),
        gps=GpsStatus(mode=3, lat_deg=35.61, lon_deg=140.12, fix_age_s=0.4),
        alerts=("disk_low",),
    )
    with open_outbox(data_dir) as outbox:
        running = service.start(outbox, app, lambda: snapshot)
        try:
            assert wait_until(lambda: running.link_status().connected, 10)
            assert wait_until(lambda: outbox.summary().pending == 0, 10)
            live = Collector(broker.port, f"roadpatrol/v1/{VEHICLE}/status")
            assert wait_until(lambda: len(live.snapshot()) >= 2, 5)  # retained, then periodic
            live.close()
        finally:
            running.stop()
    first = json.loads(live.snapshot()[0][1])
    assert live.snapshot()[0][3], "the status is retained"
    assert schema_errors("status", first) == []
    assert (first["online"], first["recording"], first["model_id"]) == (
        True,
        True,
        "rdd-lite0-1.2.0",
    )
    assert first["last_fix"] == {"lat_deg": 35.61, "lon_deg": 140.12, "fix_age_s": 0.4, "mode": 3}
    assert first["alerts"] == ["disk_low"] and first["queue_depth"] in (0, 3)
    assert json.loads(live.snapshot()[-1][1])["queue_depth"] == 0  # the backlog went out
    after = Collector(broker.port, f"roadpatrol/v1/{VEHICLE}/status")
    assert wait_until(lambda: len(after.snapshot()) == 1, 5)
    after.close()
    assert json.loads(after.snapshot()[0][1])["online"] is False

    disabled = service.start(
        outbox, app.model_copy(update={"mqtt": app.mqtt.model_copy(update={"enabled": False})})
    )
    assert disabled.link_status().enabled is False
    disabled.stop()


def _last_status_online(collector: Collector) -> bool | None:
    statuses = [json.loads(p) for t, p, _, _ in collector.snapshot() if t.endswith("/status")]
    return statuses[-1]["online"] if statuses else None


def _offline_count(collector: Collector) -> int:
    return sum(1 for _, p, _, _ in collector.snapshot() if p and not json.loads(p)["online"])
