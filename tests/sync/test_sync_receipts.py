"""End-to-end receipts from the office, on a real mosquitto: a finding's delivery ends when the
office has stored it, not when the broker acknowledged it.

In each case every finding (and image) ends in the office database exactly once, and the
vehicle's outbox says it is receipted. Receipt timeouts are short and every wait is for an event
(a count in a database, a PUBACK counter), never a fixed sleep.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.loader import AppConfig, VehicleConfig
from edge.config.mqtt import MqttConfig
from edge.outbox import Outbox
from edge.types import Finding
from edge.wire.validate import schema_errors
from sync import service
from sync.office.store import SqliteStore as OfficeStore
from sync.publisher import Publisher

from support import REPO
from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office, first_json_message, wait_until_office_subscribed
from support.sync_data import fill_outbox, open_outbox, road_jpegs

VEHICLE = "veh-rcpt"
COUNT = 12  # findings; every second one has an image


def vehicle_cfg(port: int, **overrides: object) -> MqttConfig:
    """Short receipt timeouts, so that a re-send follows within a few seconds."""
    values: dict[str, object] = {"receipt_timeout_s": 1.0, "receipt_max_wait_s": 2.0}
    values.update(overrides)
    return mqtt_cfg(port, **values)


@contextmanager
def vehicle(data_dir: Path, cfg: MqttConfig) -> Iterator[tuple[Outbox, Publisher]]:
    """The recorder's sync service (publisher and receipt listener) on an outbox."""
    app = AppConfig(vehicle=VehicleConfig(vehicle_id=VEHICLE, data_dir=data_dir), mqtt=cfg)
    with open_outbox(data_dir) as outbox:
        running = service.start(outbox, app)
        assert isinstance(running, service._Running)
        try:
            yield outbox, running.publisher
        finally:
            running.stop()


def fill(data_dir: Path) -> tuple[list[Finding], set[str]]:
    findings = fill_outbox(data_dir, VEHICLE, COUNT, road_jpegs(2, side_px=64), image_every=2)
    return findings, {f.id for f in findings[::2]}


def receipted(data_dir: Path) -> tuple[set[str], set[str]]:
    """(findings, images) the vehicle's outbox marks receipted, read straight from its file."""
    conn = sqlite3.connect(f"{(data_dir / 'outbox.sqlite3').resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = conn.execute("SELECT id FROM findings WHERE receipted_at IS NOT NULL")
        images = conn.execute("SELECT id FROM findings WHERE image_receipted_at IS NOT NULL")
        return {r[0] for r in found}, {r[0] for r in images}
    finally:
        conn.close()


def ever_acked_images(data_dir: Path) -> set[str]:
    """Images the broker has acknowledged at least once (re-sends included)."""
    conn = sqlite3.connect(f"{(data_dir / 'outbox.sqlite3').resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id FROM findings WHERE image_first_sent_at IS NOT NULL")
        return {r[0] for r in rows}
    finally:
        conn.close()


def office_images(store: OfficeStore) -> set[str]:
    return {r["finding_id"] for r in store.query("SELECT finding_id FROM images")}


def all_delivered(
    outbox: Outbox, store: OfficeStore, findings: list[Finding], images: set[str]
) -> bool:
    ids = {f.id for f in findings}
    return (
        store.finding_ids() == ids
        and office_images(store) == images
        and receipted(outbox.data_dir) == (ids, images)
    )


def assert_delivered_once(
    outbox: Outbox, store: OfficeStore, findings: list[Finding], images: set[str]
) -> None:
    counts = store.counts()
    assert counts.findings == len(findings), "each finding is stored once"
    assert counts.images == len(images)
    assert store.finding_ids() == {f.id for f in findings}
    s = outbox.summary()
    assert (s.pending, s.pending_images) == (0, 0)
    assert (s.awaiting_receipt, s.awaiting_receipt_images) == (0, 0)
    assert receipted(outbox.data_dir) == ({f.id for f in findings}, images)


def acked_by_broker(publisher: Publisher, images: set[str]) -> bool:
    c = publisher.counters
    return c.findings_sent >= COUNT and c.images_sent >= len(images)


@pytest.mark.slow
def test_the_receiver_started_after_the_vehicle_synced_gets_everything(
    broker: Broker, tmp_path: Path
) -> None:
    """The case of the issue: no subscriber yet, the broker acknowledges and drops it all."""
    findings, images = fill(tmp_path / "data")
    cfg = vehicle_cfg(broker.port, status_interval_s=0.2)
    with vehicle(tmp_path / "data", cfg) as (outbox, publisher):
        assert wait_until(lambda: acked_by_broker(publisher, images), 20)
        assert receipted(outbox.data_dir) == (set(), set()), "nobody stored anything yet"
        assert outbox.summary().awaiting_receipt_age_s is not None
        # The status topic says what waits for the office (its schema allows it).
        status = first_json_message(
            broker.port,
            f"roadpatrol/v1/{VEHICLE}/status",
            lambda doc: (
                bool(doc.get("awaiting_receipt")) and doc["awaiting_receipt"]["findings"] > 0
            ),
        )
        assert schema_errors("status", status) == []
        assert status["awaiting_receipt"]["office_silent_s"] >= 0
        with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
            assert wait_until(lambda: all_delivered(outbox, office.store, findings, images), 30)
            assert_delivered_once(outbox, office.store, findings, images)
        assert publisher.counters.findings_sent > COUNT, "the dropped ones were sent again"


@pytest.mark.slow
def test_a_broker_without_persistence_restarted_while_the_receiver_is_away(
    tmp_path: Path,
) -> None:
    plain = Broker(tmp_path / "broker", persistence=False)
    plain.start()
    try:
        findings, images = fill(tmp_path / "data")
        office_dir, office_cfg = tmp_path / "office", mqtt_cfg(plain.port)
        with Office(office_dir, office_cfg):
            pass  # the office's session exists at the broker, and queues for it
        with vehicle(tmp_path / "data", vehicle_cfg(plain.port)) as (outbox, publisher):
            assert wait_until(lambda: acked_by_broker(publisher, images), 20)
            plain.restart()  # the queue for the office, and every session, are gone
            with Office(office_dir, office_cfg) as office:
                assert wait_until(lambda: all_delivered(outbox, office.store, findings, images), 40)
                assert_delivered_once(outbox, office.store, findings, images)
    finally:
        plain.kill()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["session expired", "client id changed"])
def test_a_receiver_whose_session_is_gone_gets_everything(
    broker: Broker, tmp_path: Path, how: str
) -> None:
    """An expiry of 0 s ends the office's session the moment it disconnects: what the vehicle
    publishes while it is away is dropped by the broker, as after a longer expiry ran out. An
    office back under another client id finds no session of its own either."""
    findings, images = fill(tmp_path / "data")
    office_dir, office_cfg = tmp_path / "office", mqtt_cfg(broker.port)
    expiry = 0 if how == "session expired" else 3600
    with Office(office_dir, office_cfg, client_id="office-a", session_expiry_s=expiry):
        pass
    later_id = "office-a" if how == "session expired" else "office-b"
    with vehicle(tmp_path / "data", vehicle_cfg(broker.port)) as (outbox, publisher):
        assert wait_until(lambda: acked_by_broker(publisher, images), 20)
        with Office(office_dir, office_cfg, client_id=later_id, session_expiry_s=expiry) as office:
            assert wait_until(lambda: all_delivered(outbox, office.store, findings, images), 30)
            assert_delivered_once(outbox, office.store, findings, images)


def _office_process(port: int, office_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    office_dir.mkdir(exist_ok=True)
    log = (office_dir / "receive.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "office", "receive", "--broker", f"127.0.0.1:{port}",
         "--db", str(office_dir / "office.sqlite3"), "--images", str(office_dir / "images"),
         *extra],
        stdout=log, stderr=log,
    )  # fmt: skip


def _stored(db: Path) -> tuple[int, int]:
    """(findings, deliveries) in the office database, read by another connection."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT COUNT(*), COALESCE(SUM(deliveries), 0) FROM findings")
        findings, deliveries = row.fetchone()
        return int(findings), int(deliveries)
    except sqlite3.Error:
        return 0, 0
    finally:
        conn.close()


@pytest.mark.slow
def test_a_receiver_killed_after_storing_before_its_receipt_stores_the_resend_once(
    broker: Broker, tmp_path: Path
) -> None:
    findings, images = fill(tmp_path / "data")
    office_dir = tmp_path / "office"
    db = office_dir / "office.sqlite3"
    # Its receipts wait an hour before they go: it stores, and dies before saying so.
    office = _office_process(broker.port, office_dir, "--receipt-batch-s", "3600")
    try:
        wait_until_office_subscribed(broker.port, db)
        with vehicle(tmp_path / "data", vehicle_cfg(broker.port)) as (outbox, _):
            assert wait_until(lambda: _stored(db)[0] == COUNT, 30)
            office.kill()  # kill -9
            office.wait()
            assert receipted(outbox.data_dir) == (set(), set()), "no receipt went out"
            assert outbox.summary().awaiting_receipt + outbox.summary().pending == COUNT
            office = _office_process(broker.port, office_dir)
            assert wait_until(lambda: receipted(outbox.data_dir) == (
                {f.id for f in findings}, images), 40)  # fmt: skip
            s = outbox.summary()
            assert (s.pending, s.pending_images, s.awaiting_receipt) == (0, 0, 0)
    finally:
        office.kill()
        office.wait()
    stored, deliveries = _stored(db)
    assert stored == COUNT, "each finding once in the office database"
    assert deliveries > COUNT, "the re-sends (or the broker's redeliveries) were stored once"
    store = OfficeStore(db, None, read_only=True)
    try:
        assert store.finding_ids() == {f.id for f in findings}
        assert office_images(store) == images
    finally:
        store.close()


def _raw_client(port: int, client_id: str, **login: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if login:
        client.username_pw_set(login["username"], login["password"])
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _receipt(vehicle_id: str, findings: list[str], images: list[str] = []) -> bytes:  # noqa: B006
    from sync.receipts import receipt_payload

    return receipt_payload(vehicle_id, "office-boot", 1, findings, images)


def _outbox_rows(data_dir: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"{(data_dir / 'outbox.sqlite3').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM findings ORDER BY id").fetchall()
    finally:
        conn.close()


def test_receipts_for_unknown_ids_or_another_vehicle_change_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    from sync.receipts import ReceiptListener

    findings, _ = fill(tmp_path / "data")
    ours = [f.id for f in findings]
    strangers = [f.id for f in fill_outbox(tmp_path / "other", "veh-other", 3, [])]
    cfg = vehicle_cfg(broker.port, receipt_timeout_s=3600.0)
    with open_outbox(tmp_path / "data") as outbox:
        outbox.mark_findings_sent(ours)  # acknowledged by the broker, awaiting the office
        before = _outbox_rows(tmp_path / "data")
        listener = ReceiptListener(
            cfg, outbox, VEHICLE, client_id="veh-rcpt-receipts", persistent=True
        )
        listener.start()
        try:
            assert listener.wait_subscribed(10)
            raw = _raw_client(broker.port, "forger")
            topic = f"roadpatrol/v1/{VEHICLE}/receipt"
            for payload in (
                _receipt(VEHICLE, strangers, strangers),  # ids this vehicle never had
                _receipt("veh-other", ours, ours),  # another vehicle's receipt, our ids
                b'{"schema": {"name": "roadpatrol.receipt", "version": 1}}',  # malformed
                b"\xff\xfe not json",
            ):
                raw.publish(topic, payload, qos=1).wait_for_publish(5)
            raw.publish("roadpatrol/v1/veh-other/receipt", _receipt("veh-other", ours), qos=1)
            # Last, one real receipt: once it is in, everything before it was handled.
            raw.publish(topic, _receipt(VEHICLE, ours[:1]), qos=1).wait_for_publish(5)
            assert wait_until(lambda: listener.stats.received == 5, 10), listener.stats
            raw.disconnect()
            raw.loop_stop()
        finally:
            listener.stop()
        assert (listener.stats.findings, listener.stats.images) == (1, 0)
        assert listener.stats.ignored == 3 and listener.stats.unmatched_ids == 2 * len(strangers)
        after = _outbox_rows(tmp_path / "data")
        assert receipted(tmp_path / "data") == ({ours[0]}, set())
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert [after[i][0] for i in changed] == [ours[0]], "only the real receipt changed a row"
        assert outbox.summary().awaiting_receipt == COUNT - 1


def _passwd(path: Path, users: dict[str, str]) -> None:
    import shutil

    tool = shutil.which("mosquitto_passwd")
    assert tool is not None, "mosquitto_passwd (package mosquitto) is needed"
    for i, (user, password) in enumerate(users.items()):
        flags = ["-c", "-b"] if i == 0 else ["-b"]
        subprocess.run([tool, *flags, str(path), user, password], check=True, capture_output=True)


@pytest.mark.slow
def test_a_vehicle_cannot_receipt_itself_under_the_documented_acl(tmp_path: Path) -> None:
    from sync.receipts import ReceiptListener

    acl = REPO / "sync" / "deploy" / "mosquitto.acl"
    passwd = tmp_path / "passwd"
    _passwd(passwd, {VEHICLE: "veh-secret", "office": "office-secret"})
    guarded = Broker(
        tmp_path / "broker",
        listener_conf=f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n",
    )
    guarded.start()
    try:
        findings, _ = fill(tmp_path / "data")
        ours = [f.id for f in findings]
        (tmp_path / "veh.pw").write_text("veh-secret\n", encoding="utf-8")
        cfg = vehicle_cfg(
            guarded.port, username=VEHICLE, password_file=tmp_path / "veh.pw",
            receipt_timeout_s=3600.0,
        )  # fmt: skip
        with open_outbox(tmp_path / "data") as outbox:
            outbox.mark_findings_sent(ours)
            listener = ReceiptListener(cfg, outbox, VEHICLE, client_id="rx", persistent=True)
            listener.start()
            try:
                assert listener.wait_subscribed(10), listener.last_error
                topic = f"roadpatrol/v1/{VEHICLE}/receipt"
                # The vehicle's own credentials: the broker refuses the publish.
                self_ = _raw_client(guarded.port, "self", username=VEHICLE, password="veh-secret")
                refusals: list[object] = []
                self_.on_publish = lambda c, u, mid, rc, p: refusals.append(rc)
                self_.publish(topic, _receipt(VEHICLE, ours), qos=1).wait_for_publish(5)
                assert wait_until(lambda: len(refusals) == 1, 5)
                assert getattr(refusals[0], "is_failure", False), refusals  # not authorised
                office = _raw_client(guarded.port, "office", username="office",
                                     password="office-secret")  # fmt: skip
                office.publish(topic, _receipt(VEHICLE, ours[:2]), qos=1).wait_for_publish(5)
                assert wait_until(lambda: listener.stats.received >= 1, 10)
                for client in (self_, office):
                    client.disconnect()
                    client.loop_stop()
            finally:
                listener.stop()
            assert listener.stats.received == 1, "the vehicle's own receipt never arrived"
            assert receipted(tmp_path / "data") == (set(ours[:2]), set())
            assert outbox.summary().awaiting_receipt == COUNT - 2
    finally:
        guarded.kill()


@pytest.mark.slow
def test_sync_drain_exits_0_only_once_the_office_receipted_everything(
    broker: Broker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    findings, images = fill(data_dir)
    drain = [sys.executable, "-m", "edge", "sync", "drain", "--data-dir", str(data_dir), "--json",
             "--broker", f"127.0.0.1:{broker.port}", "--receipt-timeout", "1"]  # fmt: skip
    # No office: the broker acknowledges everything, and nothing is receipted.
    alone = subprocess.run([*drain, "--timeout", "3"], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 1, alone.stderr
    report = json.loads(alone.stdout)
    assert report["remaining"] + report["awaiting_receipt"] >= COUNT
    assert report["sent_findings"] >= COUNT and report["receipted"] == 0
    # Told not to wait for receipts (an office without them yet), the broker's word will do.
    acked = subprocess.run(
        [*drain, "--timeout", "30", "--no-wait-receipts"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert acked.returncode == 0, acked.stderr
    report = json.loads(acked.stdout)
    assert report["remaining"] == 0 and report["awaiting_receipt"] > 0
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
        done = subprocess.run([*drain, "--timeout", "60"], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["remaining"], report["awaiting_receipt"]) == (0, 0)
        assert report["receipted"] == COUNT + len(images)
        with open_outbox(data_dir) as outbox:
            assert_delivered_once(outbox, office.store, findings, images)


@pytest.mark.slow
def test_a_broker_without_persistence_restarted_during_a_drain_loses_no_image(
    tmp_path: Path,
) -> None:
    """The issue's second case: the broker acknowledged every image of a running drain, then
    restarted without persistence before the office had them. The drain does not exit 0 until
    the office has receipted each one."""
    plain = Broker(tmp_path / "broker", persistence=False)
    plain.start()
    data_dir = tmp_path / "data"
    findings, images = fill(data_dir)
    office_dir, office_cfg = tmp_path / "office", mqtt_cfg(plain.port)
    with Office(office_dir, office_cfg):
        pass  # its session queues what the drain sends: until the restart
    drain = subprocess.Popen(
        [sys.executable, "-m", "edge", "sync", "drain", "--data-dir", str(data_dir), "--json",
         "--broker", f"127.0.0.1:{plain.port}", "--receipt-timeout", "1", "--timeout", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with open_outbox(data_dir) as watched:
            assert wait_until(lambda: len(ever_acked_images(data_dir)) == len(images), 30)
            assert drain.poll() is None, "no receipt yet: the drain must still be running"
            plain.restart()
            with Office(office_dir, office_cfg) as office:
                out, err = drain.communicate(timeout=120)
                assert drain.returncode == 0, err
                report = json.loads(out)
                assert (report["remaining"], report["awaiting_receipt"]) == (0, 0)
                assert_delivered_once(watched, office.store, findings, images)
    finally:
        drain.kill()
        drain.wait()
        plain.kill()


@pytest.mark.slow
def test_nothing_is_receipted_that_the_office_could_not_store(
    broker: Broker, tmp_path: Path
) -> None:
    """The office's image folder breaks: an image is not stored (and the office takes nothing
    more until it can: the broker delivers that image again first), and gets no receipt; what
    is receipted is in the office database. Once the folder is back, everything arrives."""
    import shutil

    findings, images = fill(tmp_path / "data")
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
        folder = tmp_path / "office" / "images"
        shutil.rmtree(folder)
        folder.write_text("not a folder\n", encoding="utf-8")  # every image write fails
        with vehicle(tmp_path / "data", vehicle_cfg(broker.port)) as (outbox, _):
            assert wait_until(lambda: office.receiver.stats.store_failures >= 3, 30)
            # The receipts of findings stored before the failure reach the vehicle in their
            # own time: wait for them, then check nothing else was receipted.
            assert wait_until(lambda: bool(receipted(outbox.data_dir)[0]), 30), (
                "findings stored before the failure: receipted"
            )
            assert receipted(outbox.data_dir)[1] == set(), "no receipt for an image not stored"
            assert office.store.counts().images == 0
            assert receipted(outbox.data_dir)[0] <= office.store.finding_ids()
            folder.unlink()
            folder.mkdir()
            assert wait_until(lambda: all_delivered(outbox, office.store, findings, images), 40)
            assert_delivered_once(outbox, office.store, findings, images)
