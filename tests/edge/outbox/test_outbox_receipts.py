"""The outbox's third state on a real SQLite file: pending → acknowledged by the broker →
receipted by the office. Clocks are injected (wall seconds): no sleeping."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.config.loader import ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.outbox import Outbox
from edge.recording.recorder import Recorder
from edge.status import Alert

from support.outbox import DAY_S, T0, ManualClock, make_finding, minutes, real_jpegs, rows

BIG = 10**12

# The outbox's layout before receipts (schema version 1), as vehicles in service have it.
V1_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE findings (
    id TEXT PRIMARY KEY, grade INTEGER NOT NULL, captured_at_utc TEXT NOT NULL,
    payload TEXT NOT NULL, payload_bytes INTEGER NOT NULL, stored_at REAL NOT NULL,
    sent_at REAL, image_name TEXT, image_bytes INTEGER NOT NULL DEFAULT 0,
    image_state TEXT NOT NULL DEFAULT 'none', image_sent_at REAL
);
CREATE INDEX findings_unsent
    ON findings (grade DESC, captured_at_utc, id, payload_bytes, sent_at) WHERE sent_at IS NULL;
CREATE INDEX findings_sent ON findings (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE track (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_utc TEXT, lat_deg REAL NOT NULL,
    lon_deg REAL NOT NULL, speed_mps REAL, track_deg REAL, hdop REAL,
    fix_mode INTEGER NOT NULL, stored_at REAL NOT NULL, sent_at REAL
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def open_outbox(data_dir: Path, wall: ManualClock, keep_sent_s: float | None = None) -> Outbox:
    return Outbox.open(
        data_dir, image_cap_bytes=BIG, min_free_bytes=0, keep_sent_s=keep_sent_s, clock=wall
    )


def state(db: Path, finding_id: str) -> tuple[object, ...]:
    return rows(
        db,
        "SELECT sent_at, first_sent_at, receipted_at, image_state, image_receipted_at "
        "FROM findings WHERE id = ?",
        (finding_id,),
    )[0]


def test_an_old_layout_outbox_is_migrated_in_place_and_its_sent_records_await_a_receipt(
    tmp_path: Path,
) -> None:
    wall = ManualClock(time.time())  # the status ages are on the real clock
    db = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(V1_DDL)
    sent_at = wall.now - 3600
    jpeg = real_jpegs(1)[0]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "sent01.jpg").write_bytes(jpeg)
    with conn:
        for fid, sent, image, name in (
            ("sent01", sent_at, "sent", "sent01.jpg"),
            ("pend01", None, "none", None),
        ):
            conn.execute(
                "INSERT INTO findings (id, grade, captured_at_utc, payload, payload_bytes, "
                "stored_at, sent_at, image_name, image_bytes, image_state, image_sent_at) "
                "VALUES (?, 2, ?, '{}', 2, ?, ?, ?, ?, ?, ?)",
                (fid, "2025-04-01T00:00:00.000000Z", sent_at, sent, name,
                 len(jpeg) if name else 0, image, sent),
            )  # fmt: skip
    conn.close()

    with open_outbox(tmp_path, wall, keep_sent_s=60) as outbox:
        assert rows(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
        # The broker had it; nothing said the office did: awaiting its receipt, not pruned
        # although it was acknowledged an hour ago and retention keeps a minute.
        assert state(db, "sent01") == (sent_at, sent_at, None, "sent", None)
        assert state(db, "pend01")[:3] == (None, None, None)
        s = outbox.summary()
        assert (s.pending, s.awaiting_receipt, s.awaiting_receipt_images) == (1, 1, 1)
        assert s.awaiting_receipt_age_s is not None and 3600 <= s.awaiting_receipt_age_s < 3660
        assert s.office_silent_s == s.awaiting_receipt_age_s  # no receipt ever came
        assert s.last_receipt_age_s is None
        assert [p.finding_id for p in outbox.pending_findings(5)] == ["pend01"]
        # No receipt within the timeout: it goes again.
        assert outbox.requeue_unreceipted(300, 6 * 3600) == (1, 1)
        assert {p.finding_id for p in outbox.pending_findings(5)} == {"sent01", "pend01"}
        assert outbox.pending_images(5) == [], "the image goes after its finding, again"
        outbox.mark_finding_sent("sent01")
        assert [i.finding_id for i in outbox.pending_images(5)] == ["sent01"]
    # A migrated outbox opens again as it is.
    with open_outbox(tmp_path, wall) as outbox:
        assert outbox.summary().stored == 2


def test_the_wait_for_a_receipt_doubles_with_each_send_up_to_the_cap(tmp_path: Path) -> None:
    wall = ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding = make_finding(3)
    timeout, cap = 100.0, 350.0
    with open_outbox(tmp_path, wall) as outbox:
        outbox.add(finding, None)
        t0 = wall.now
        sends = []
        for _ in range(5):
            assert outbox.mark_finding_sent(finding.id)
            sends.append(wall.now - t0)
            waited = 0.0
            while outbox.requeue_unreceipted(timeout, cap) == (0, 0):
                wall.advance(10)
                waited += 10
                assert waited < 10 * cap, "never sent again"
        # Sent at 0, then 100 (waited 100), 200 (100), 400 (200), 750 (350: the cap).
        assert sends == [0, 100, 200, 400, 750]
        # Pending again, but the office may hold it: a repeat sighting does not rewrite it.
        assert [p.finding_id for p in outbox.pending_findings(5)] == [finding.id]
        assert outbox.replace_unsent(finding, None) is False
        assert state(db, finding.id)[1] == t0  # the first acknowledgement is kept


def test_a_receipt_ends_the_delivery_even_of_a_record_never_acknowledged_here(
    tmp_path: Path,
) -> None:
    """The PUBACK was lost with the link, but the office stored it and says so."""
    wall = ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding, other = make_finding(2, seq=1), make_finding(1, seq=2)
    with open_outbox(tmp_path, wall, keep_sent_s=DAY_S) as outbox:
        outbox.add(finding, real_jpegs(1)[0])
        outbox.add(other, None)
        assert outbox.mark_receipted([finding.id], [finding.id]) == (1, 1)
        assert state(db, finding.id) == (wall.now, wall.now, wall.now, "sent", wall.now)
        assert [p.finding_id for p in outbox.pending_findings(5)] == [other.id]
        assert outbox.pending_images(5) == []
        assert outbox.mark_receipted([finding.id], [finding.id]) == (0, 0), "once only"
        # A receipted record is never requeued, a repeat sighting cannot rewrite it.
        wall.advance(10 * DAY_S)
        assert outbox.requeue_unreceipted(1, 1) == (0, 0)
        assert outbox.replace_unsent(finding, None) is False
        assert outbox.prune_sent().findings == 1
        assert {r[0] for r in rows(db, "SELECT id FROM findings")} == {other.id}


def test_images_only_the_broker_acknowledged_are_evicted_after_receipted_ones(
    tmp_path: Path,
) -> None:
    wall = ManualClock()
    db = tmp_path / "outbox.sqlite3"
    jpegs = real_jpegs(3)
    # Same grade, oldest first: without receipts the oldest sent image would go first.
    acked, receipted, unsent = (make_finding(1, T0 + minutes(i), seq=i) for i in range(3))
    with open_outbox(tmp_path, wall) as outbox:
        for f, jpeg in zip((acked, receipted, unsent), jpegs, strict=True):
            outbox.add(f, jpeg)
        outbox.mark_findings_sent([acked.id, receipted.id])
        outbox.mark_images_sent([acked.id, receipted.id])
        outbox.mark_receipted([receipted.id], [receipted.id])
        on_disk = sum(len(j) for j in jpegs)
    # A cap that needs one image's room: the receipted one goes, not the older acked one.
    cap = on_disk - min(len(j) for j in jpegs) // 2
    with Outbox.open(tmp_path, image_cap_bytes=cap, min_free_bytes=0, clock=wall):
        states = dict(rows(db, "SELECT id, image_state FROM findings"))
    assert states[receipted.id] == "evicted"
    assert states[acked.id] == "sent" and states[unsent.id] == "pending"


@pytest.mark.slow
@pytest.mark.parametrize(("alert_after_s", "alerted"), [(3600.0, True), (3 * 3600.0, False)])
def test_the_recorder_says_when_the_office_has_confirmed_nothing_for_long(
    tmp_path: Path, alert_after_s: float, alerted: bool
) -> None:
    """A finding the broker acknowledged two hours ago, no receipt since: the driver's screen
    and the status topic get the office_silent alert once that is past mqtt.receipt_alert_s."""
    data_dir = tmp_path / "data"
    two_hours_ago = ManualClock(time.time() - 2 * 3600)
    with open_outbox(data_dir, two_hours_ago) as outbox:
        finding = make_finding(2)
        outbox.add(finding, None)
        outbox.mark_finding_sent(finding.id)
    broken = tmp_path / "broken.json"  # no model: the drive is over in a moment
    broken.write_text('{"name": "half-written')
    config = demo_config(data_dir, fast=True)
    mqtt = MqttConfig(enabled=True, host="127.0.0.1", receipt_alert_s=alert_after_s)
    config = config.model_copy(update={"model": ModelConfig(package=broken), "mqtt": mqtt})
    recorder = Recorder(config, lockstep=True).start()
    try:
        deadline = time.monotonic() + 30
        while recorder.status().outbox.awaiting_receipt == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = recorder.status()
        assert status.outbox.awaiting_receipt == 1
        assert status.outbox.office_silent_s is not None and status.outbox.office_silent_s >= 7200
        assert (Alert.OFFICE_SILENT in status.alerts) is alerted
    finally:
        recorder.stop()


@pytest.mark.slow
def test_outbox_status_reports_what_awaits_the_office(tmp_path: Path) -> None:
    wall = ManualClock(time.time() - 3 * 3600)  # acknowledged three hours ago
    findings = [make_finding(g, T0 + minutes(i), seq=i) for i, g in enumerate((1, 2, 3))]
    jpegs = real_jpegs(3)
    with open_outbox(tmp_path, wall) as outbox:
        for f, jpeg in zip(findings, jpegs, strict=True):
            outbox.add(f, jpeg)
        outbox.mark_findings_sent([f.id for f in findings])
        outbox.mark_images_sent([findings[0].id])
        outbox.mark_receipted([findings[2].id], ())
    roadpatrol = [sys.executable, "-m", "edge", "outbox", "status", "--data-dir", str(tmp_path)]
    done = subprocess.run([*roadpatrol, "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["pending"], report["awaiting_receipt"], report["awaiting_receipt_images"]) == (
        0, 2, 1,
    )  # fmt: skip
    assert 3 * 3600 <= report["awaiting_receipt_age_s"] < 3 * 3600 + 60
    # A receipt came (for findings[2]) as the others were acknowledged: silent since then.
    assert report["office_silent_s"] == pytest.approx(report["last_receipt_age_s"], abs=1)
    text = subprocess.run(roadpatrol, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "awaiting office receipt 2 findings, 1 images (oldest 3 h 00 min)" in text.stdout
    assert "the office has not confirmed anything for 3 h 00 min" in text.stdout
