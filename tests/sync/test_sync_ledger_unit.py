"""The ledger alone, on a real outbox and a hand-moved clock: what is busy, when marks are
written, and what a reconnect forgets (no broker, no threads, no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import sync.ledger
from edge.outbox import Outbox
from edge.types import Fix, FixMode
from sync.ledger import MARK_EVERY_S, Ledger, Sent

from support.outbox import T0, ManualClock
from support.sync_data import fill_outbox, open_outbox

VEHICLE = "veh-ledger"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The ledger's monotonic clock, moved by the test."""
    manual = ManualClock(start=1000.0)
    monkeypatch.setattr(sync.ledger, "time", SimpleNamespace(monotonic=manual))
    return manual


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    fill_outbox(tmp_path / "data", VEHICLE, 6, [])
    with open_outbox(tmp_path / "data") as box:
        yield box


def _pending_ids(outbox: Outbox) -> set[str]:
    return {row.finding_id for row in outbox.pending_findings(1000)}


def _finding(outbox: Outbox, index: int) -> Sent:
    ids = sorted(_pending_ids(outbox))
    return Sent("finding", (ids[index],), 100 + index)


def test_a_handed_record_is_busy_until_acked_and_marked(outbox: Outbox, clock: ManualClock) -> None:
    ledger = Ledger(outbox)
    sent = _finding(outbox, 0)
    fid = sent.keys[0]
    ledger.handed(7, sent)
    assert ledger.busy("finding") == {fid}
    assert ledger.busy("image") == set(), "kinds are separate: its image is not busy"
    assert ledger.acknowledged(7, ok=True) is sent
    assert ledger.inflight == {} and ledger.acks_waiting == 1
    assert ledger.busy("finding") == {fid}, "acked but unmarked: still not to be fetched"
    assert fid in _pending_ids(outbox)
    marked = ledger.flush(force=False)  # nothing else in flight: no reason to wait
    assert marked.findings == [fid]
    assert fid not in _pending_ids(outbox) and len(_pending_ids(outbox)) == 5
    assert ledger.busy("finding") == set() and ledger.acks_waiting == 0


def test_an_ack_for_an_unknown_mid_changes_nothing(outbox: Outbox, clock: ManualClock) -> None:
    ledger = Ledger(outbox)
    sent = _finding(outbox, 0)
    ledger.handed(1, sent)
    assert ledger.acknowledged(2, ok=True) is None
    assert ledger.acknowledged(2, ok=False) is None
    assert list(ledger.inflight) == [1] and ledger.acks_waiting == 0
    assert ledger.busy("finding") == {sent.keys[0]}
    assert ledger.flush(force=True).findings == []
    assert len(_pending_ids(outbox)) == 6


def test_a_duplicate_ack_is_counted_once(outbox: Outbox, clock: ManualClock) -> None:
    ledger = Ledger(outbox)
    sent = _finding(outbox, 0)
    ledger.handed(3, sent)
    assert ledger.acknowledged(3, ok=True) is sent
    assert ledger.acknowledged(3, ok=True) is None, "the second PUBACK of mid 3"
    assert ledger.acks_waiting == 1
    assert ledger.flush(force=True).findings == [sent.keys[0]]


def test_out_of_order_acks_mark_exactly_the_acked_ones(outbox: Outbox, clock: ManualClock) -> None:
    ledger = Ledger(outbox)
    sents = [_finding(outbox, i) for i in range(3)]
    for mid, sent in zip((10, 11, 12), sents, strict=True):
        ledger.handed(mid, sent)
    assert ledger.acknowledged(12, ok=True) is sents[2]
    assert ledger.acknowledged(10, ok=True) is sents[0]
    marked = ledger.flush(force=True)
    assert marked.findings == [sents[2].keys[0], sents[0].keys[0]]  # in the order acked
    assert list(ledger.inflight) == [11]
    assert ledger.busy("finding") == {sents[1].keys[0]}
    assert sents[1].keys[0] in _pending_ids(outbox)


def test_marks_wait_for_company_but_not_longer_than_mark_every_s(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    first, second = _finding(outbox, 0), _finding(outbox, 1)
    ledger.handed(1, first)
    ledger.handed(2, second)
    ledger.acknowledged(1, ok=True)
    # More PUBACKs are on the way (mid 2 in flight): the first waits to share the commit.
    assert ledger.flush(force=False).findings == []
    assert first.keys[0] in _pending_ids(outbox)
    clock.advance(MARK_EVERY_S * 0.9)
    assert ledger.flush(force=False).findings == []
    clock.advance(MARK_EVERY_S * 0.2)  # now older than MARK_EVERY_S
    assert ledger.flush(force=False).findings == [first.keys[0]]
    assert first.keys[0] not in _pending_ids(outbox)


def test_the_batch_age_counts_from_the_first_waiting_ack(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    sents = [_finding(outbox, i) for i in range(3)]
    for mid, sent in enumerate(sents):
        ledger.handed(mid, sent)
    ledger.acknowledged(0, ok=True)
    clock.advance(MARK_EVERY_S * 0.6)
    ledger.acknowledged(1, ok=True)  # a later ack does not restart the wait
    clock.advance(MARK_EVERY_S * 0.6)
    assert ledger.flush(force=False).findings == [sents[0].keys[0], sents[1].keys[0]]


def test_force_marks_at_once(outbox: Outbox, clock: ManualClock) -> None:
    ledger = Ledger(outbox)
    first, second = _finding(outbox, 0), _finding(outbox, 1)
    ledger.handed(1, first)
    ledger.handed(2, second)
    ledger.acknowledged(1, ok=True)
    assert ledger.flush(force=True).findings == [first.keys[0]]
    assert ledger.flush(force=True).findings == [], "nothing waits any more"


def test_a_full_batch_is_marked_without_waiting(
    outbox: Outbox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync.ledger, "MARK_BATCH", 4)  # the real 256 costs 256 fsyncs to set up
    ids = sorted(_pending_ids(outbox))
    ledger = Ledger(outbox)
    for mid, fid in enumerate(ids):
        ledger.handed(mid, Sent("finding", (fid,), 10))
    for mid in range(3):
        ledger.acknowledged(mid, ok=True)
    assert ledger.flush(force=False).findings == [], "one short of a batch, young, more due"
    ledger.acknowledged(3, ok=True)
    assert ledger.flush(force=False).findings == ids[:4]
    assert _pending_ids(outbox) == set(ids[4:])


def test_a_refused_record_is_not_marked_and_stays_busy_only_while_parked(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    sent = _finding(outbox, 0)
    fid = sent.keys[0]
    ledger.handed(5, sent)
    assert ledger.acknowledged(5, ok=False) is sent
    assert ledger.acks_waiting == 0 and ledger.inflight == {}
    assert ledger.busy("finding") == set(), "refused and not parked: free to fetch"
    ledger.park(sent, until=clock.now + 2.0)
    assert ledger.busy("finding") == {fid}
    clock.advance(1.9)
    assert ledger.busy("finding") == {fid}
    clock.advance(0.2)
    assert ledger.busy("finding") == set(), "the retry time has come"
    assert ledger.flush(force=True).findings == []
    assert fid in _pending_ids(outbox)


def test_a_reconnect_forgets_what_paho_held_and_mids_start_again(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    old, acked, new = _finding(outbox, 0), _finding(outbox, 1), _finding(outbox, 2)
    ledger.handed(1, old)
    ledger.handed(2, acked)
    ledger.acknowledged(2, ok=True)
    ledger.forget_inflight()
    assert ledger.inflight == {} and ledger.oldest_handed_at() is None
    # Lost with the connection: pending again; acked but unmarked: still busy until marked.
    assert ledger.busy("finding") == {acked.keys[0]}
    assert ledger.acknowledged(1, ok=True) is None, "a PUBACK from the old connection"
    # The new paho client numbers from 1 again: mid 1 now means the new record.
    ledger.handed(1, new)
    assert ledger.acknowledged(1, ok=True) is new
    marked = ledger.flush(force=True)
    assert marked.findings == [acked.keys[0], new.keys[0]]
    assert old.keys[0] in _pending_ids(outbox)


def test_forget_acks_drops_unmarked_acks_so_they_are_sent_again(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    sent = _finding(outbox, 0)
    ledger.handed(1, sent)
    ledger.acknowledged(1, ok=True)
    ledger.forget_acks()
    assert ledger.acks_waiting == 0 and ledger.busy("finding") == set()
    assert ledger.flush(force=True).findings == []
    assert sent.keys[0] in _pending_ids(outbox)


def test_track_batches_and_images_are_marked_in_their_own_tables(
    outbox: Outbox, clock: ManualClock
) -> None:
    point_ids = []
    for i in range(3):
        fix = Fix(i, T0, 35.6 + i * 1e-4, 140.1, FixMode.FIX_3D)
        point_id = outbox.add_track_point(fix)
        assert point_id is not None
        point_ids.append(point_id)
    ledger = Ledger(outbox)
    ledger.handed(1, Sent("track", tuple(point_ids[:2]), 300))
    ledger.handed(2, Sent("status", ("status",), 50))
    assert ledger.busy("track") == set(point_ids[:2])
    assert ledger.acknowledged(2, ok=True) is not None
    assert ledger.acks_waiting == 0, "a status ack marks nothing"
    ledger.acknowledged(1, ok=True)
    marked = ledger.flush(force=True)
    assert marked.track_points == point_ids[:2] and marked.findings == []
    assert [p.id for p in outbox.pending_track(10)] == [point_ids[2]]
    assert len(_pending_ids(outbox)) == 6


def test_oldest_handed_at_is_the_earliest_record_still_in_flight(
    outbox: Outbox, clock: ManualClock
) -> None:
    ledger = Ledger(outbox)
    assert ledger.oldest_handed_at() is None
    ledger.handed(1, _finding(outbox, 0))
    clock.advance(3.0)
    ledger.handed(2, _finding(outbox, 1))
    assert ledger.oldest_handed_at() == 1000.0
    ledger.acknowledged(1, ok=True)
    assert ledger.oldest_handed_at() == 1003.0
    ledger.acknowledged(2, ok=True)
    assert ledger.oldest_handed_at() is None
