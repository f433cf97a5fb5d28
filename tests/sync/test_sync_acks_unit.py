"""PUBACK results settled one by one, on a real outbox and a hand-moved clock: counters,
refusals and their backoff, the link's last ack, and how long the link has been silent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

import sync.acks
import sync.ledger
from edge.backoff import Backoff
from edge.outbox import Outbox
from sync.acks import Acknowledgements, PublisherCounters
from sync.ledger import Ledger, Sent
from sync.link import LinkTracker

from support.outbox import ManualClock
from support.sync_data import fill_outbox, open_outbox, road_jpegs

VEHICLE = "veh-acks"
SUCCESS = ReasonCode(PacketTypes.PUBACK, "Success")
NO_SUBSCRIBERS = ReasonCode(PacketTypes.PUBACK, "No matching subscribers")  # 0x10: delivered
NOT_AUTHORISED = ReasonCode(PacketTypes.PUBACK, "Not authorized")  # 0x87


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    manual = ManualClock(start=500.0)
    fake = SimpleNamespace(monotonic=manual)
    monkeypatch.setattr(sync.ledger, "time", fake)
    monkeypatch.setattr(sync.acks, "time", fake)
    return manual


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    fill_outbox(tmp_path / "data", VEHICLE, 4, road_jpegs(1, side_px=32), image_every=2)
    with open_outbox(tmp_path / "data") as box:
        yield box


class Rig:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.ledger = Ledger(outbox)
        self.counters = PublisherCounters()
        self.link = LinkTracker(enabled=True)
        self.link.set(connected=True, error=None)
        # rand() = 1: each delay is the full ceiling, 1, 2, 4, 8, 8 … seconds.
        self.backoff = Backoff(1.0, 8.0, rand=lambda: 1.0)
        self.acks = Acknowledgements(self.ledger, self.counters, self.link, self.backoff)
        self.ids = sorted(r.finding_id for r in outbox.pending_findings(100))

    def hand(self, mid: int, kind: str, key: object, nbytes: int = 1000) -> Sent:
        sent = Sent(kind, (key,), nbytes)
        self.ledger.handed(mid, sent)
        return sent

    def pending(self) -> set[str]:
        return {r.finding_id for r in self.outbox.pending_findings(100)}


@pytest.fixture
def rig(outbox: Outbox, clock: ManualClock) -> Rig:
    return Rig(outbox)


def test_a_success_counts_its_bytes_marks_it_and_names_it_on_the_link(rig: Rig) -> None:
    rig.hand(1, "finding", rig.ids[0], nbytes=1234)
    rig.acks.queue(1, SUCCESS)
    acked, marked = rig.acks.settle()
    assert acked and marked.findings == [rig.ids[0]]
    assert rig.counters.bytes_acked == 1234 and rig.counters.findings_sent == 1
    assert rig.counters.refused == 0
    assert rig.link.snapshot().last_acked_id == rig.ids[0]
    assert rig.pending() == set(rig.ids[1:])


def test_no_matching_subscribers_is_still_a_delivery_to_the_broker(rig: Rig) -> None:
    rig.hand(1, "finding", rig.ids[0])
    rig.acks.queue(1, NO_SUBSCRIBERS)
    acked, marked = rig.acks.settle()
    assert acked and marked.findings == [rig.ids[0]] and rig.counters.refused == 0


def test_unknown_and_repeated_pubacks_are_ignored(rig: Rig) -> None:
    rig.hand(1, "finding", rig.ids[0], nbytes=10)
    rig.acks.queue(99, SUCCESS)  # never handed (or from a forgotten connection)
    acked, marked = rig.acks.settle()
    assert not acked and marked.findings == [] and rig.counters.bytes_acked == 0
    rig.acks.queue(1, SUCCESS)
    rig.acks.queue(1, SUCCESS)  # the same PUBACK twice
    rig.acks.queue(1, NOT_AUTHORISED)  # and a contradicting one after it
    acked, marked = rig.acks.settle()
    assert acked and marked.findings == [rig.ids[0]]
    assert rig.counters.bytes_acked == 10 and rig.counters.findings_sent == 1
    assert rig.counters.refused == 0 and rig.acks.refusal is None
    assert len(rig.acks.results) == 0, "every queued result was taken in"


def test_acks_in_any_order_settle_the_right_records(rig: Rig) -> None:
    for mid, fid in zip((1, 2, 3), rig.ids[:3], strict=True):
        rig.hand(mid, "finding", fid, nbytes=mid * 100)
    rig.acks.queue(3, SUCCESS)
    rig.acks.queue(1, SUCCESS)
    acked, marked = rig.acks.settle()
    # Mid 2 is still in flight and the acks are fresh: the marks wait to share one commit.
    assert acked and marked.findings == []
    assert rig.counters.bytes_acked == 400
    marked = rig.acks.mark(force=True)
    assert marked.findings == [rig.ids[2], rig.ids[0]]
    assert rig.counters.findings_sent == 2
    assert rig.pending() == {rig.ids[1], rig.ids[3]}


def test_a_refusal_keeps_the_record_parks_it_and_pauses_sending(
    rig: Rig, clock: ManualClock
) -> None:
    fid = rig.ids[0]
    rig.hand(1, "finding", fid)
    rig.acks.queue(1, NOT_AUTHORISED)
    acked, marked = rig.acks.settle()
    assert acked and marked.findings == []
    assert rig.counters.refused == 1 and rig.counters.bytes_acked == 0
    assert rig.acks.paused_until == 501.0  # the first backoff delay: 1 s
    assert rig.acks.refusal == f"broker refused finding {fid}: Not authorized (0x87)"
    link = rig.link.snapshot()
    assert link.connected, "a refused publish does not bring the link down"
    assert link.last_error == rig.acks.refusal and link.last_reason == "not_authorised"
    assert fid in rig.pending()
    assert rig.ledger.busy("finding") == {fid}, "not fetched again before the retry time"
    clock.advance(1.01)
    assert rig.ledger.busy("finding") == set()


def test_refusals_back_off_further_each_time_up_to_the_cap(rig: Rig, clock: ManualClock) -> None:
    pauses = []
    for mid in range(1, 7):
        rig.hand(mid, "finding", rig.ids[0])
        rig.acks.queue(mid, NOT_AUTHORISED)
        rig.acks.settle()
        pauses.append(rig.acks.paused_until - clock.now)
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert rig.counters.refused == 6


def test_a_record_getting_through_ends_the_refusal_and_resets_its_backoff(rig: Rig) -> None:
    rig.hand(1, "finding", rig.ids[0])
    rig.acks.queue(1, NOT_AUTHORISED)
    rig.acks.settle()
    rig.hand(2, "finding", rig.ids[1])
    rig.acks.queue(2, NOT_AUTHORISED)
    rig.acks.settle()
    assert rig.backoff.failures == 2
    rig.hand(3, "finding", rig.ids[2])
    rig.acks.queue(3, SUCCESS)
    rig.acks.settle()
    assert rig.acks.refusal is None and rig.backoff.failures == 0
    assert rig.link.snapshot().last_acked_id == rig.ids[2]
    assert rig.pending() == {rig.ids[0], rig.ids[1], rig.ids[3]}


def test_the_link_names_the_last_image_when_images_and_findings_are_marked_together(
    rig: Rig,
) -> None:
    rig.outbox.mark_findings_sent(rig.ids[:3])  # their images are due now
    image_of = [p.finding_id for p in rig.outbox.pending_images(10)]
    assert image_of, "the fixture stores images with every other finding"
    rig.hand(1, "image", image_of[0], nbytes=5000)
    rig.hand(2, "finding", rig.ids[3], nbytes=700)
    rig.acks.queue(2, SUCCESS)
    rig.acks.queue(1, SUCCESS)
    rig.acks.settle()
    assert rig.counters.images_sent == 1 and rig.counters.findings_sent == 1
    assert rig.counters.bytes_acked == 5700
    assert rig.link.snapshot().last_acked_id == image_of[0]
    assert image_of[0] not in {p.finding_id for p in rig.outbox.pending_images(10)}
    assert rig.pending() == set()


def test_a_status_ack_counts_bytes_but_marks_nothing(rig: Rig) -> None:
    rig.hand(1, "status", "status", nbytes=321)
    rig.acks.queue(1, SUCCESS)
    acked, marked = rig.acks.settle()
    assert acked and rig.counters.bytes_acked == 321
    assert (marked.findings, marked.images, marked.track_points) == ([], [], [])
    assert rig.link.snapshot().last_acked_id is None


def test_stalled_counts_from_the_later_of_the_oldest_handover_and_the_last_ack(
    rig: Rig, clock: ManualClock
) -> None:
    assert rig.acks.stalled_s() is None, "nothing in flight: nothing can stall"
    rig.acks.connected()  # at 500
    clock.advance(2.0)
    rig.hand(1, "finding", rig.ids[0])  # at 502
    rig.hand(2, "finding", rig.ids[1])
    clock.advance(5.0)
    assert rig.acks.stalled_s() == pytest.approx(5.0)
    rig.acks.queue(1, SUCCESS)
    rig.acks.settle()  # a PUBACK at 507: the link is alive
    clock.advance(1.5)
    assert rig.acks.stalled_s() == pytest.approx(1.5)
    rig.acks.queue(2, SUCCESS)
    rig.acks.settle()
    assert rig.acks.stalled_s() is None


def test_a_reconnect_restarts_the_silence_clock(rig: Rig, clock: ManualClock) -> None:
    rig.hand(1, "finding", rig.ids[0])
    clock.advance(30.0)
    assert rig.acks.stalled_s() == pytest.approx(30.0)
    rig.ledger.forget_inflight()
    rig.acks.connected()
    rig.hand(1, "finding", rig.ids[0])
    clock.advance(0.5)
    assert rig.acks.stalled_s() == pytest.approx(0.5)
