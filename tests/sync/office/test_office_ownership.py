"""The office stores each vehicle's data as that vehicle sent it (issue 16).

Vehicles are raw MQTT 5 clients publishing on their own topics through a real mosquitto to
the office receiver; what matters is what ends up in the office database and images folder.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.wire.serialize import finding_to_dict
from sync.office import ownership
from sync.payloads import finding_payload

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office
from support.sync_data import make_finding, road_jpegs

P = "roadpatrol/v1"


class Vehicle:
    """A vehicle's MQTT client: publishes QoS 1 on ``<prefix>/<vehicle id>/...``."""

    def __init__(self, port: int, vehicle_id: str) -> None:
        self.vehicle_id = vehicle_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=vehicle_id, protocol=mqtt.MQTTv5
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def finding(self, doc: dict[str, object]) -> None:
        self._publish(f"{P}/{self.vehicle_id}/finding", json.dumps(doc).encode(), None)

    def image(self, finding_id: str, jpeg: bytes) -> None:
        self._publish(f"{P}/{self.vehicle_id}/image/{finding_id}", jpeg, "image/jpeg")

    def _publish(self, topic: str, payload: bytes, content_type: str | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if content_type:
            props.ContentType = content_type
        self.client.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _finding(vehicle: str, grade: int = 3) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        finding_payload(finding_to_dict(make_finding(vehicle, 1, grade=grade)))
    )
    return doc


@pytest.fixture
def office(broker: Broker, tmp_path: Path) -> Iterator[Office]:
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as running:
        yield running


@pytest.fixture
def fleet(broker: Broker) -> Iterator[tuple[Vehicle, Vehicle]]:
    a, b = Vehicle(broker.port, "veh-a"), Vehicle(broker.port, "veh-b")
    yield a, b
    a.close()
    b.close()


def _image_rows(office: Office) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(office.store.db_path)
    try:
        return db.execute("SELECT finding_id, vehicle_id, bytes FROM images").fetchall()
    finally:
        db.close()


def test_another_vehicles_early_image_never_becomes_the_findings_photo(
    office: Office,
    fleet: tuple[Vehicle, Vehicle],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sync.office.receiver")
    a, b = fleet
    real, fake = road_jpegs(2, side_px=64)
    doc = _finding("veh-a")
    fid = str(doc["id"])
    # B guesses (or replays) A's finding id and races A's photo in on its own topic.
    b.image(fid, fake)
    assert wait_until(lambda: office.receiver.handler.ownership.stats.parked == 1, 10)
    a.finding(doc)
    a.image(fid, real)
    assert wait_until(lambda: office.store.counts().images == 1, 10), caplog.text
    assert _image_rows(office) == [(fid, "veh-a", len(real))]
    stored = tmp_path / "office" / "images" / "veh-a" / f"{fid}.jpg"
    assert stored.read_bytes() == real
    assert not list((tmp_path / "office" / "images").rglob(f"*{fid}.jpg.part"))
    parked = tmp_path / "office" / "images" / ownership.PARKED_DIR
    assert not list(parked.rglob("*.jpg"))  # B's copy is gone, not kept as anything
    assert any(
        "sent by 'veh-b' discarded" in r.getMessage() and fid in r.getMessage()
        for r in caplog.records
    ), caplog.text
    # After the finding is stored, B's image for it is refused outright, with a log line.
    b.image(fid, fake)
    assert wait_until(lambda: office.receiver.stats.rejected == 1, 10)
    assert "of vehicle 'veh-a' sent by 'veh-b'" in caplog.text
    assert stored.read_bytes() == real


def test_an_image_that_comes_before_its_own_finding_is_kept_and_attached(
    office: Office, fleet: tuple[Vehicle, Vehicle]
) -> None:
    a, _ = fleet
    (jpeg,) = road_jpegs(1, side_px=64)
    doc = _finding("veh-a")
    fid = str(doc["id"])
    a.image(fid, jpeg)
    assert wait_until(lambda: office.receiver.handler.ownership.stats.parked == 1, 10)
    assert office.store.counts().images == 0
    a.finding(doc)
    assert wait_until(lambda: office.store.counts().images == 1, 10)
    assert _image_rows(office) == [(fid, "veh-a", len(jpeg))]
    assert office.receiver.handler.ownership.stats.adopted == 1


def test_a_finding_id_held_by_another_vehicle_is_refused_and_logged(
    office: Office, fleet: tuple[Vehicle, Vehicle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.office.receiver")
    a, b = fleet
    doc = _finding("veh-a")
    fid = doc["id"]
    b.finding({**_finding("veh-b"), "id": fid})  # B pre-empts A's id
    assert wait_until(lambda: office.store.counts().findings == 1, 10)
    a.finding(doc)
    assert wait_until(lambda: office.receiver.stats.rejected == 1, 10)
    assert f"finding {fid} is already held by vehicle 'veh-b'; refused" in caplog.text
    assert office.store.counts().findings == 1
    assert office.receiver.stats.duplicates == 0  # not silently counted as a repeat


def test_a_conflicting_redelivery_is_logged_and_the_first_copy_kept(
    office: Office, fleet: tuple[Vehicle, Vehicle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.office.receiver")
    a, _ = fleet
    first, second = road_jpegs(2, side_px=64)
    doc = _finding("veh-a", grade=3)
    fid = str(doc["id"])
    a.finding(doc)
    a.image(fid, first)
    a.image(fid, first)  # a true re-delivery: a duplicate, no warning
    assert wait_until(lambda: office.receiver.stats.duplicates == 1, 10)
    assert "delivered again" not in caplog.text
    a.finding({**doc, "grade": 1})
    a.image(fid, second)
    assert wait_until(lambda: office.receiver.handler.ownership.stats.conflicts == 2, 10)
    assert f"finding {fid} of veh-a delivered again with different content" in caplog.text
    assert f"image of finding {fid} from veh-a delivered again with other bytes" in caplog.text
    stored = office.store.query("SELECT grade FROM findings WHERE id=?", (fid,))
    assert [r["grade"] for r in stored] == [3]
    assert Path(office.store.image_path_for("veh-a", fid)).read_bytes() == first


def test_parked_images_are_bounded_in_time(
    office: Office, fleet: tuple[Vehicle, Vehicle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.office.receiver")
    _, b = fleet
    old, new = road_jpegs(2, side_px=64)
    orphan = str(_finding("veh-b")["id"])
    b.image(orphan, old)
    assert wait_until(lambda: office.receiver.handler.ownership.stats.parked == 1, 10)
    # A day passes (written as the office's clock would have it) without its finding.
    db = sqlite3.connect(office.store.db_path)
    db.execute("UPDATE parked_images SET parked_at_unix_s = parked_at_unix_s - ?", (86_401,))
    db.commit()
    db.close()
    b.image(str(_finding("veh-b")["id"]), new)  # the next park sweeps the expired one
    stats = office.receiver.handler.ownership.stats
    # Both: the sweep comes first, the new image's row after it (counted by ``parked``).
    assert wait_until(lambda: stats.expired == 1 and stats.parked == 2, 10)
    assert f"parked image for {orphan} of veh-b dropped: no finding within 86400 s" in caplog.text
    rows = office.store.query("SELECT finding_id FROM parked_images")
    assert orphan not in [r["finding_id"] for r in rows] and len(rows) == 1
