"""Several receivers sharing the feed: three `office receive --shared-group` processes on one
PostGIS database behind a real mosquitto, the real publisher draining several vehicles, one
receiver killed with -9 twice mid-stream and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from sync.drain import drain
from sync.office.messages import MessageHandler
from sync.office.store_api import open_store

from support.broker import Broker, mqtt_cfg, wait_until
from support.office_fleet import Receiver
from support.proxy import TcpProxy
from support.sync_data import fill_outbox, make_finding, open_outbox, road_jpegs

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

VEHICLES = [f"veh-s{i}" for i in range(4)]
PER_VEHICLE = 150  # the i-th finding of every vehicle is the same damage (same place, grade)


class Subscriber:
    """``mosquitto_sub`` on the findings topic, its lines read on a thread as they come."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t",
             "roadpatrol/v1/+/finding", "-q", "1", "-d"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.subscribed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.subscribed.wait(30), "mosquitto_sub did not subscribe"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "SUBACK" in line:  # -d prints it: subscribed from here on
                self.subscribed.set()
            self.lines.append(line)

    def stop(self) -> list[dict]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._reader.join(30)
        return [json.loads(line) for line in self.lines if line.startswith("{")]


@pytest.mark.slow
def test_three_receivers_share_the_feed_and_a_killed_one_loses_and_doubles_nothing(
    broker: Broker, pg_url: str, tmp_path: Path
) -> None:
    sub = Subscriber(broker.port)
    receivers = [
        Receiver(tmp_path, broker.port, pg_url, f"office-{i}", shared_group="office")
        for i in range(3)
    ]
    for r in receivers:
        r.start()
    jpegs = road_jpegs(3, side_px=32)
    outboxes = {v: tmp_path / "vehicles" / v for v in VEHICLES}
    findings = [f for v, d in outboxes.items() for f in fill_outbox(d, v, PER_VEHICLE, jpegs)]
    total = len(findings)
    store = open_store(pg_url, None, read_only=True)

    def drain_one(vehicle: str) -> None:
        with open_outbox(outboxes[vehicle]) as outbox:
            result = drain(mqtt_cfg(broker.port), outbox, vehicle, timeout_s=240)
        assert result.remaining == 0, result

    drains = [threading.Thread(target=drain_one, args=(v,)) for v in VEHICLES]
    for t in drains:
        t.start()
    stored_at_kill = []
    for share in (0.2, 0.5):  # twice, mid-stream: at a fifth and at half of the findings
        assert wait_until(lambda s=share: store.counts().findings >= s * total, 180)
        stored_at_kill.append(store.counts().findings)
        receivers[0].kill()
        receivers[0].start()  # the same client id: the broker kept its session
    for t in drains:
        t.join(300)
    assert wait_until(lambda: store.counts().images == total, 180), store.counts()
    counts = store.counts()
    stats = [r.stop() for r in receivers]
    seen = sub.stop()

    assert all(n < total for n in stored_at_kill), stored_at_kill  # the kills were mid-stream
    expected = {f.id for f in findings}
    assert (counts.findings, counts.images) == (total, total)  # every one stored, once
    assert store.finding_ids() == expected == {doc["id"] for doc in seen}
    assert counts.deliveries >= total
    assert stats[1]["findings"] > 0 and stats[2]["findings"] > 0  # the feed was shared
    assert sum(s["rejected"] for s in stats) == 0

    # The sites are those one receiver builds from the same findings.
    alone = MessageHandler(open_store(str(tmp_path / "alone.sqlite3"), tmp_path / "alone"))
    for doc in seen:
        alone.handle(f"roadpatrol/v1/{doc['vehicle_id']}/finding", json.dumps(doc).encode())
    shape = "SELECT type_code, sightings, max_grade, lat_deg, lon_deg FROM sites"

    def sites(rows: list) -> list[tuple]:
        return sorted((r[0], r[1], r[2], round(r[3], 7), round(r[4], 7)) for r in rows)

    assert sites(store.query(shape)) == sites(alone.store.query(shape))
    assert {r[1] for r in store.query(shape)} == {len(VEHICLES)}  # each damage: one site
    assert os.listdir(tmp_path / "images") == [] or set(os.listdir(tmp_path / "images")) <= {
        *VEHICLES, ".parked"
    }
    store.close()
    alone.store.close()


def test_a_finding_stored_but_not_acked_before_a_kill_is_stored_once(
    broker: Broker, store_db: str, tmp_path: Path
) -> None:
    """The receiver commits the finding, its PUBACK never reaches the broker (swallowed by a
    proxy), it is killed with -9; restarted, it gets the message again and counts a delivery."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.wire.serialize import finding_to_dict
    from sync.payloads import finding_payload, status_payload

    proxy = TcpProxy(broker.port)
    receiver = Receiver(tmp_path, proxy.port, store_db, "office-once", shared_group="office")
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="veh-once", protocol=mqtt.MQTTv5)
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    try:
        receiver.start()
        store = open_store(store_db, None, read_only=True)
        probe = status_payload(vehicle_id="veh-once", boot_id="b", seq=1, online=True,
                               snapshot=None, queue_depth=0)  # fmt: skip

        def subscribed() -> bool:  # the probe stored: the subscription is in place
            raw.publish("roadpatrol/v1/veh-once/status", probe, qos=1).wait_for_publish(5)
            return bool(store.query("SELECT 1 FROM vehicle_status"))

        assert wait_until(subscribed, 30, interval_s=0.3)
        proxy.mute_upward()
        finding = make_finding("veh-once", 1, grade=3)
        raw.publish("roadpatrol/v1/veh-once/finding", finding_payload(finding_to_dict(finding)),
                    qos=1).wait_for_publish(5)  # fmt: skip
        assert wait_until(lambda: store.counts().findings == 1, 30)  # committed, not acked
        receiver.kill()
        proxy.resume()
        receiver.start()
        assert wait_until(lambda: store.counts().deliveries == 2, 30), store.counts()
        counts = store.counts()
        assert (counts.findings, counts.sites) == (1, 1)
        assert store.finding_ids() == {finding.id}
        store.close()
        assert receiver.stop()["duplicates"] == 1
    finally:
        raw.disconnect()
        raw.loop_stop()
        proxy.stop()
