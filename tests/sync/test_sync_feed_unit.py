"""What the publisher sends next, from a real outbox with real road images (no broker):
the order (findings by grade then age, a track batch, then images of acknowledged findings),
what is busy, the image batch fetched ahead, and each message's topic, payload and
properties."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.outbox import Outbox
from edge.privacy.anonymise import privacy_note
from edge.status import Status
from edge.types import Finding, Fix, FixMode
from edge.wire.validate import IMAGE_SCHEMA_TAG, schema_errors
from sync.feed import Message, OutboxFeed
from sync.ledger import Ledger

from support.outbox import T0
from support.sync_data import make_finding, open_outbox, road_jpegs

VEHICLE = "veh-feed"
PREFIX = "city/rp"
SIDE_PX = 48


@dataclass
class Rig:
    outbox: Outbox
    feed: OutboxFeed
    ledger: Ledger
    next_mid: int = 1

    def take(self, free: int) -> list[Message]:
        """As the publisher does: each message handed to paho before the next is asked for."""
        taken = []
        for message in self.feed.messages(free, self.ledger):
            self.ledger.handed(self.next_mid, message.sent)
            self.next_mid += 1
            taken.append(message)
        return taken

    def ack_all(self) -> None:
        for mid in list(self.ledger.inflight):
            self.ledger.acknowledged(mid, ok=True)
        self.ledger.flush(force=True)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with open_outbox(tmp_path / "data") as box:
        yield box


def _rig(outbox: Outbox, status_provider: Callable[[], Status] | None = None) -> Rig:
    feed = OutboxFeed(
        outbox,
        VEHICLE,
        "boot-feed",
        topic_prefix=PREFIX,
        track_batch_max=3,
        status_provider=status_provider,
    )
    return Rig(outbox, feed, Ledger(outbox))


@pytest.fixture
def rig(outbox: Outbox) -> Iterator[Rig]:
    made = _rig(outbox)
    yield made
    made.feed.close()


def _add(outbox: Outbox, seq: int, grade: int, age_s: float, jpeg: bytes | None) -> Finding:
    finding = make_finding(VEHICLE, seq, grade=grade, captured_at_utc=T0 - timedelta(seconds=age_s))
    assert outbox.add(finding, jpeg)
    return finding


def _acked_with_images(outbox: Outbox, count: int, grade: int) -> list[Finding]:
    """``count`` findings with road images, oldest first, that the broker acknowledged."""
    jpeg = road_jpegs(1, side_px=SIDE_PX)[0]
    made = [_add(outbox, i, grade=grade, age_s=10 - i, jpeg=jpeg) for i in range(count)]
    outbox.mark_findings_sent([f.id for f in made])
    return made


def _kind(message: Message) -> str:
    return message.topic.split("/")[3]


def _finding_ids(messages: list[Message]) -> list[str]:
    return [json.loads(m.payload)["id"] for m in messages if _kind(m) == "finding"]


def _image_ids(messages: list[Message]) -> list[str]:
    return [m.topic.split("/")[-1] for m in messages if _kind(m) == "image"]


def _unpacked(message: Message) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.unpack(message.properties.pack())
    return props


def _add_track(outbox: Outbox, count: int) -> list[int]:
    ids = []
    for i in range(count):
        point = outbox.add_track_point(Fix(i, T0, 35.6 + i * 1e-4, 140.1, FixMode.FIX_3D))
        assert point is not None
        ids.append(point)
    return ids


def test_findings_go_grade_3_first_then_by_grade_oldest_first(rig: Rig) -> None:
    g1_new = _add(rig.outbox, 0, grade=1, age_s=0, jpeg=None)
    g3_new = _add(rig.outbox, 1, grade=3, age_s=10, jpeg=None)
    g2 = _add(rig.outbox, 2, grade=2, age_s=20, jpeg=None)
    g3_old = _add(rig.outbox, 3, grade=3, age_s=30, jpeg=None)
    g1_old = _add(rig.outbox, 4, grade=1, age_s=500, jpeg=None)
    taken = rig.take(10)
    assert _finding_ids(taken) == [g3_old.id, g3_new.id, g2.id, g1_old.id, g1_new.id]
    assert all(m.topic == f"{PREFIX}/{VEHICLE}/finding" for m in taken)
    assert [m.sent.kind for m in taken] == ["finding"] * 5
    for message in taken:
        doc = json.loads(message.payload)
        assert schema_errors("finding", doc) == [] and not message.retain
        assert message.sent.nbytes == len(message.payload)
        props = _unpacked(message)
        assert props.ContentType == "application/json" and props.PayloadFormatIndicator == 1


def test_at_most_free_messages_and_busy_records_are_never_fetched_again(rig: Rig) -> None:
    made = [_add(rig.outbox, i, grade=2, age_s=100 - i, jpeg=None) for i in range(5)]
    _add_track(rig.outbox, 2)
    first = rig.take(2)
    assert _finding_ids(first) == [made[0].id, made[1].id], "no room left for the track"
    second = rig.take(2)
    assert _finding_ids(second) == [made[2].id, made[3].id]
    rig.ledger.acknowledged(1, ok=True)  # acked, not yet marked: still busy
    third = rig.take(5)
    assert _finding_ids(third) == [made[4].id]
    assert [_kind(m) for m in third] == ["finding", "track"]
    assert rig.take(5) == [], "all in flight or awaiting their mark"


def test_a_track_batch_follows_the_findings_oldest_first_one_batch_at_a_time(rig: Rig) -> None:
    points = _add_track(rig.outbox, 5)  # batches of at most 3
    finding = _add(rig.outbox, 0, grade=1, age_s=0, jpeg=None)
    taken = rig.take(10)
    assert [_kind(m) for m in taken] == ["finding", "track"]
    assert _finding_ids(taken) == [finding.id]
    track = taken[1]
    doc = json.loads(track.payload)
    assert schema_errors("track", doc) == []
    assert [p["id"] for p in doc["points"]] == points[:3] and doc["seq"] == 1
    assert track.topic == f"{PREFIX}/{VEHICLE}/track" and track.sent.keys == tuple(points[:3])
    assert rig.take(10) == [], "one track batch in flight at a time"
    rig.ack_all()
    (rest,) = rig.take(10)
    doc = json.loads(rest.payload)
    assert [p["id"] for p in doc["points"]] == points[3:] and doc["seq"] == 2


def test_a_lost_track_batch_goes_again_with_a_new_sequence_number(rig: Rig) -> None:
    points = _add_track(rig.outbox, 2)
    (lost,) = rig.take(10)
    rig.ledger.forget_inflight()  # the connection dropped before its PUBACK
    (again,) = rig.take(10)
    assert json.loads(again.payload)["seq"] == json.loads(lost.payload)["seq"] + 1
    assert [p["id"] for p in json.loads(again.payload)["points"]] == points


def test_images_only_of_acknowledged_findings_in_grade_order(rig: Rig) -> None:
    jpegs = road_jpegs(3, side_px=SIDE_PX)
    low = _add(rig.outbox, 0, grade=1, age_s=5, jpeg=jpegs[0])
    high = _add(rig.outbox, 1, grade=3, age_s=1, jpeg=jpegs[1])
    none = _add(rig.outbox, 2, grade=2, age_s=3, jpeg=None)
    first = rig.take(10)
    assert [_kind(m) for m in first] == ["finding"] * 3, "no image before its finding is acked"
    assert _finding_ids(first) == [high.id, none.id, low.id]
    rig.ack_all()
    images = rig.take(10)
    assert _image_ids(images) == [high.id, low.id]
    for message, finding, jpeg in zip(images, (high, low), (jpegs[1], jpegs[0]), strict=True):
        assert message.topic == f"{PREFIX}/{VEHICLE}/image/{finding.id}"
        assert message.sent.kind == "image" and message.sent.keys == (finding.id,)
        decoded = cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_COLOR)
        original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and np.array_equal(decoded, original), "the road image"
        props = _unpacked(message)
        assert props.ContentType == "image/jpeg"
        user = dict(props.UserProperty)
        assert user == {
            "schema": IMAGE_SCHEMA_TAG,
            "finding_id": finding.id,
            "vehicle_id": VEHICLE,
            "boot_id": finding.boot_id,
            "seq": str(finding.seq),
        }
        assert schema_errors("image", user) == []
    rig.ack_all()
    assert rig.take(10) == [] and rig.outbox.summary().pending_images == 0


def test_the_privacy_note_of_an_image_travels_in_its_user_properties(rig: Rig) -> None:
    jpeg = road_jpegs(1, side_px=SIDE_PX)[0]
    finding = _add(rig.outbox, 0, grade=2, age_s=0, jpeg=jpeg)
    by = "faces:yunet-2023mar text:east-1"
    assert rig.outbox.attach_image(finding, jpeg, privacy_note(anonymised=True, by=by))
    rig.take(1)
    rig.ack_all()
    (image,) = rig.take(1)
    user = dict(_unpacked(image).UserProperty)
    assert (user["anonymised"], user["anonymiser"]) == ("true", by)
    assert schema_errors("image", user) == []


def test_an_image_batch_fetched_ahead_gives_way_to_a_newly_acked_higher_grade(
    rig: Rig,
) -> None:
    low = _acked_with_images(rig.outbox, 3, grade=1)  # acked earlier
    urgent = _add(rig.outbox, 9, grade=3, age_s=0, jpeg=road_jpegs(1, side_px=SIDE_PX)[0])
    first = rig.take(2)  # the urgent finding, then one image of the three fetched ahead
    assert _finding_ids(first) == [urgent.id] and _image_ids(first) == [low[0].id]
    assert rig.ledger.acknowledged(1, ok=True) is first[0].sent
    assert rig.ledger.flush(force=True).findings == [urgent.id]
    # Without the feed being told, the batch fetched ahead is used up first…
    assert _image_ids(rig.take(1)) == [low[1].id]
    # …but once told that findings were acked, their images take their grade's place.
    rig.feed.findings_acked()
    assert _image_ids(rig.take(2)) == [urgent.id, low[2].id]


def test_an_image_evicted_after_the_query_is_skipped_with_a_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    made = _acked_with_images(rig.outbox, 3, grade=2)
    messages = rig.feed.messages(10, rig.ledger)
    first = next(messages)
    assert _image_ids([first]) == [made[0].id]
    (rig.outbox.images_dir / f"{made[1].id}.jpg").unlink()  # gone between query and read
    with caplog.at_level(logging.WARNING, logger="sync.publisher"):
        rest = list(messages)
    assert _image_ids(rest) == [made[2].id]
    assert any(
        made[1].id in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records
    )


def test_each_record_goes_under_its_own_vehicles_topic(rig: Rig) -> None:
    jpeg = road_jpegs(1, side_px=SIDE_PX)[0]
    old = make_finding("veh-renamed", 0, grade=2, captured_at_utc=T0)
    assert rig.outbox.add(old, jpeg)
    (message,) = rig.take(10)
    assert message.topic == f"{PREFIX}/veh-renamed/finding"
    rig.ack_all()
    (image,) = rig.take(10)
    assert image.topic == f"{PREFIX}/veh-renamed/image/{old.id}"
    assert dict(_unpacked(image).UserProperty)["vehicle_id"] == "veh-renamed"


def test_the_status_message_is_retained_and_says_what_waits(outbox: Outbox) -> None:
    for i in range(3):
        _add(outbox, i, grade=1, age_s=i, jpeg=None)
    snapshot = Status(recording=True, vehicle_id=VEHICLE, alerts=("disk_low",))
    rig = _rig(outbox, status_provider=lambda: snapshot)
    try:
        online = rig.feed.status_message(online=True, seq=4)
        offline = rig.feed.status_message(online=False, seq=5)
    finally:
        rig.feed.close()
    assert online.retain and online.topic == f"{PREFIX}/{VEHICLE}/status"
    assert online.sent.kind == "status"
    doc = json.loads(online.payload)
    assert schema_errors("status", doc) == []
    assert (doc["online"], doc["seq"], doc["queue_depth"]) == (True, 4, 3)
    assert (doc["recording"], doc["alerts"], doc["boot_id"]) == (True, ["disk_low"], "boot-feed")
    gone = json.loads(offline.payload)
    assert schema_errors("status", gone) == []
    assert (gone["online"], gone["queue_depth"], gone["awaiting_receipt"]) == (False, None, None)


def test_a_failing_status_provider_leaves_its_fields_empty_not_the_message(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Status:
        raise RuntimeError("recorder gone")

    rig = _rig(outbox, status_provider=broken)
    try:
        with caplog.at_level(logging.WARNING, logger="sync.publisher"):
            doc = json.loads(rig.feed.status_message(online=True, seq=1).payload)
    finally:
        rig.feed.close()
    assert schema_errors("status", doc) == []
    assert doc["recording"] is None and doc["alerts"] == [] and doc["queue_depth"] == 0
    assert any("recorder gone" in r.getMessage() for r in caplog.records)


def test_images_evicted_while_waiting_in_the_batch_cost_one_query_and_are_given_up(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    made = _acked_with_images(rig.outbox, 3, grade=1)
    assert _image_ids(rig.take(1)) == [made[0].id]  # the other two wait in the batch
    for f in made[1:]:
        (rig.outbox.images_dir / f"{f.id}.jpg").unlink()  # the disk cap evicted them
    with caplog.at_level(logging.WARNING, logger="sync.publisher"):
        assert rig.take(10) == []
    unreadable = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(unreadable) == 2
    # The outbox was asked once more, saw the files gone and stopped offering them.
    assert rig.outbox.summary().pending_images == 1  # made[0], in flight
    rig.ack_all()
    assert rig.take(10) == [] and rig.outbox.summary().pending_images == 0


def test_an_image_whose_record_is_damaged_goes_with_its_topic_alone(rig: Rig) -> None:
    jpeg = road_jpegs(1, side_px=SIDE_PX)[0]
    finding = _add(rig.outbox, 0, grade=3, age_s=0, jpeg=jpeg)
    rig.outbox.mark_findings_sent([finding.id])
    with sqlite3.connect(rig.outbox.db_path) as conn:  # the record's JSON damaged on disk
        conn.execute("UPDATE findings SET payload = '{not json' WHERE id = ?", (finding.id,))
    conn.close()
    (image,) = rig.take(10)
    assert image.topic == f"{PREFIX}/{VEHICLE}/image/{finding.id}"
    props = _unpacked(image)
    assert props.ContentType == "image/jpeg"
    assert not hasattr(props, "UserProperty"), "no identity to claim"
    assert image.payload.startswith(b"\xff\xd8\xff")
