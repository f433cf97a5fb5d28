"""Retention on a real SQLite file and real JPEGs: what the office has had for long goes, the
rest stays. Clocks are injected (wall seconds for sent_at, monotonic for pacing): no sleeping.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxConfig
from edge.types import Fix, FixMode, FixQuality

from support.outbox import (
    DAY_S,
    T0,
    ManualClock,
    deliver_finding,
    deliver_findings,
    deliver_image,
    deliver_images,
    make_finding,
    minutes,
    real_jpegs,
    rows,
)

BIG = 10**12  # a cap nobody reaches
ROADPATROL = str(Path(sys.executable).with_name("roadpatrol"))


def open_outbox(
    data_dir: Path,
    wall: ManualClock,
    mono: ManualClock,
    keep_sent_s: float | None,
    image_cap_bytes: int = BIG,
) -> Outbox:
    return Outbox.open(
        data_dir,
        image_cap_bytes=image_cap_bytes,
        min_free_bytes=0,
        keep_sent_s=keep_sent_s,
        clock=wall,
        monotonic=mono,
    )


def fix(k: int) -> Fix:
    return Fix(
        mono_ns=k,
        time_utc=T0 + minutes(k / 60),
        lat_deg=35.6073 + k * 1e-4,
        lon_deg=140.1063 - k * 1e-4,
        mode=FixMode.FIX_3D,
        quality=FixQuality.GPS,
        speed_mps=8.0,
        track_deg=90.0,
        hdop=1.1,
    )


def finding_ids(db: Path) -> set[str]:
    return {r[0] for r in rows(db, "SELECT id FROM findings")}


def track_ids(db: Path) -> set[int]:
    return {r[0] for r in rows(db, "SELECT id FROM track")}


def image_files(data_dir: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_size for p in (data_dir / "images").glob("*.jpg")}


def test_sent_records_older_than_the_limit_go_with_their_image_files(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    jpegs = real_jpegs(6)
    old_sent = [make_finding(g, T0 + minutes(i), seq=i) for i, g in enumerate((1, 2, 3))]
    old_sent_no_image = make_finding(2, T0 + minutes(3), seq=3)
    old_unsent = [make_finding(g, T0 + minutes(4 + i), seq=4 + i) for i, g in enumerate((1, 3))]
    young_sent = make_finding(1, T0 + minutes(9), seq=9)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=7 * DAY_S) as outbox:
        for i, f in enumerate(old_sent + old_unsent):
            assert outbox.add(f, jpegs[i])
        assert outbox.add(old_sent_no_image, None)
        sent_ids = [f.id for f in [*old_sent, old_sent_no_image]]
        assert deliver_findings(outbox, sent_ids) == 4
        assert deliver_images(outbox, [f.id for f in old_sent]) == 3
        points = [outbox.add_track_point(fix(k)) for k in range(4)]
        assert outbox.mark_track_sent([p for p in points[:3] if p is not None]) == 3

        wall.advance(7 * DAY_S + 1)  # the old ones are now a second past the limit
        assert outbox.add(young_sent, jpegs[5])
        assert deliver_finding(outbox, young_sent.id)
        assert deliver_image(outbox, young_sent.id)
        young_point = outbox.add_track_point(fix(10))
        assert young_point is not None
        assert outbox.mark_track_sent([young_point]) == 1
        files_before = image_files(tmp_path)
        assert set(files_before) == {f.id for f in [*old_sent, *old_unsent, young_sent]}

        pruned = outbox.prune_sent()

        gone_files = {f.id: files_before[f.id] for f in old_sent}
        assert (pruned.findings, pruned.images, pruned.track_points) == (4, 3, 3)
        assert pruned.image_bytes == sum(gone_files.values())
        kept = {f.id for f in [*old_unsent, young_sent]}
        assert finding_ids(db) == kept
        assert set(image_files(tmp_path)) == kept
        assert track_ids(db) == {points[3], young_point}
        assert [p.finding_id for p in outbox.pending_findings(10)] == [
            old_unsent[1].id,
            old_unsent[0].id,
        ]

        summary = outbox.summary()
        assert (summary.pruned_findings, summary.pruned_images) == (4, 3)
        assert summary.pruned_image_bytes == sum(gone_files.values())
        assert summary.pruned_track_points == 3
        assert summary.stored == 7  # ever stored: pruned records still count
        assert outbox.stats(max_age_s=0).pruned == 4  # what the screen and status see
        assert summary.stored_by_grade == {"0": 0, "1": 3, "2": 2, "3": 2}
        on_disk = image_files(tmp_path)
        assert (summary.images_on_disk, summary.image_bytes_on_disk) == (
            len(on_disk),
            sum(on_disk.values()),
        )
        assert outbox.stats().stored == 7
    # The byte counter the cap works from agrees with a recount at the next open.
    (counter,) = rows(db, "SELECT value FROM counters WHERE name = 'image_bytes_on_disk'")[0]
    assert counter == sum(image_files(tmp_path).values())


def test_unsent_records_stay_at_any_age(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    jpegs = real_jpegs(3)
    findings = [make_finding(g, T0 + minutes(i), seq=i) for i, g in enumerate((1, 2, 3))]
    with open_outbox(tmp_path, wall, mono, keep_sent_s=0) as outbox:
        for f, jpeg in zip(findings, jpegs, strict=True):
            outbox.add(f, jpeg)
        points = {outbox.add_track_point(fix(k)) for k in range(3)}
        files = {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()}
        wall.advance(10 * 365 * DAY_S)
        pruned = outbox.prune_sent()
        assert (pruned.findings, pruned.track_points) == (0, 0)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=0):  # and at open
        pass
    assert finding_ids(db) == {f.id for f in findings}
    assert track_ids(db) == points
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == files


def test_a_sent_finding_waits_for_its_image_to_be_sent_and_kept(tmp_path: Path) -> None:
    """The row is what the publisher sends the image from: it stays until the image went,
    and then for the full time after the image's own acknowledgement."""
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding = make_finding(3)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:
        outbox.add(finding, real_jpegs(1)[0])
        deliver_finding(outbox, finding.id)
        wall.advance(2 * DAY_S)
        assert outbox.prune_sent().findings == 0
        assert [i.finding_id for i in outbox.pending_images(5)] == [finding.id]
        assert deliver_image(outbox, finding.id)
        wall.advance(0.5 * DAY_S)  # finding sent 2.5 days ago, image half a day ago
        assert outbox.prune_sent().findings == 0
        assert finding_ids(db) == {finding.id}
        assert set(image_files(tmp_path)) == {finding.id}
        wall.advance(0.5 * DAY_S + 1)
        assert outbox.prune_sent().images == 1
        assert finding_ids(db) == set()
        assert image_files(tmp_path) == {}


def test_an_unsent_finding_whose_image_was_marked_sent_stays(tmp_path: Path) -> None:
    """Acknowledgements may arrive in any order; the record is the thing that must not be
    lost, so an unsent finding stays whatever its image's state."""
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding = make_finding(2)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:
        outbox.add(finding, real_jpegs(1)[0])
        assert deliver_image(outbox, finding.id)
        wall.advance(30 * DAY_S)
        assert outbox.prune_sent().findings == 0
        assert [p.finding_id for p in outbox.pending_findings(5)] == [finding.id]
        assert set(image_files(tmp_path)) == {finding.id}
        assert deliver_finding(outbox, finding.id)
        wall.advance(DAY_S + 1)
        pruned = outbox.prune_sent()
        assert (pruned.findings, pruned.images) == (1, 1)
        assert finding_ids(db) == set()
        assert image_files(tmp_path) == {}


def test_a_sent_finding_whose_image_was_evicted_is_pruned_without_a_file(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding = make_finding(1)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=None) as outbox:
        outbox.add(finding, real_jpegs(1)[0])
        deliver_finding(outbox, finding.id)
    # A cap of one byte evicts the unsent image: nothing is left to send for this finding.
    with open_outbox(tmp_path, wall, mono, keep_sent_s=None, image_cap_bytes=1) as outbox:
        assert rows(db, "SELECT image_state FROM findings") == [("evicted",)]
        assert outbox.summary().evictions == 1
    wall.advance(DAY_S + 1)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:  # pruned at open
        assert finding_ids(db) == set()
        summary = outbox.summary()
        assert (summary.pruned_findings, summary.pruned_images, summary.evictions) == (1, 0, 1)


def test_keep_zero_prunes_at_the_next_pass_which_rides_on_mark_calls(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    first, second = make_finding(1, seq=1), make_finding(2, seq=2)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=0) as outbox:  # a pass ran at open
        outbox.add(first, None)
        outbox.add(second, None)
        assert deliver_finding(outbox, first.id)
        mono.advance(60)
        assert deliver_finding(outbox, second.id)
        # Passes are minutes apart: both sent rows wait for the next one.
        assert finding_ids(db) == {first.id, second.id}
        mono.advance(600)
        point = outbox.add_track_point(fix(1))
        assert point is not None
        assert outbox.mark_track_sent([point]) == 1  # this call runs the pass
        assert finding_ids(db) == set()
        assert track_ids(db) == set()
        assert outbox.summary().pruned_findings == 2


def test_config_wires_retention_and_tools_without_it_keep_everything(tmp_path: Path) -> None:
    cfg = OutboxConfig()
    assert cfg.keep_sent_days == 7
    assert cfg.keep_sent_s == 7 * DAY_S
    assert OutboxConfig.model_fields["keep_sent_days"].description
    with pytest.raises(ValueError, match="keep_sent_days"):
        OutboxConfig.model_validate({"keep_sent_days": -1})

    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    finding = make_finding(3)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=None) as outbox:
        outbox.add(finding, real_jpegs(1)[0])
        deliver_finding(outbox, finding.id)
        deliver_image(outbox, finding.id)
        wall.advance(3 * DAY_S)
        mono.advance(3 * DAY_S)
        assert outbox.prune_sent().findings == 0
        assert outbox.mark_finding_sent(finding.id) is False  # a mark call prunes nothing either
    assert finding_ids(db) == {finding.id}

    two_days = OutboxConfig(keep_sent_days=2, image_cap_mb=100, min_free_mb=0)
    with Outbox.from_config(tmp_path, two_days, clock=wall, monotonic=mono) as outbox:
        assert finding_ids(db) == set()  # pruned while opening
        assert image_files(tmp_path) == {}
        assert outbox.summary().pruned_images == 1


def test_a_long_backlog_goes_in_batches_within_a_time_budget(tmp_path: Path) -> None:
    """A pass holds its caller briefly: it stops on its budget and the next one goes on."""
    wall = ManualClock()
    ticks = ManualClock()

    def mono() -> float:  # every look at the clock costs 0.1 s: the budget runs out quickly
        ticks.advance(0.1)
        return ticks.now

    db = tmp_path / "outbox.sqlite3"
    with Outbox.open(
        tmp_path, image_cap_bytes=BIG, min_free_bytes=0, keep_sent_s=DAY_S, clock=wall
    ) as outbox:
        pass
    _insert_sent_rows(db, n=450, sent_at=wall.now, payload_bytes=64)
    wall.advance(DAY_S + 1)
    passes = []
    with Outbox.open(
        tmp_path,
        image_cap_bytes=BIG,
        min_free_bytes=0,
        keep_sent_s=DAY_S,
        clock=wall,
        monotonic=mono,
    ) as outbox:
        left_after_open = len(finding_ids(db))
        assert 0 < left_after_open < 450
        while True:
            pruned = outbox.prune_sent()
            passes.append(pruned.findings)
            if pruned.done:
                break
            assert len(passes) < 20
        assert finding_ids(db) == set()
        assert outbox.summary().pruned_findings == 450
        assert outbox.summary().stored == 450
    assert sum(passes) == left_after_open


def _insert_sent_rows(db: Path, *, n: int, sent_at: float, payload_bytes: int) -> None:
    """Bulk rows the office has had (receipted), written straight into the real schema (a
    fast set-up)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO findings (id, grade, captured_at_utc, payload, payload_bytes, "
                "stored_at, sent_at, first_sent_at, receipted_at, image_state) "
                "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, 'none')",
                [
                    (
                        f"bulk{i:06d}",
                        f"2025-04-01T00:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i:06d}Z",
                        json.dumps({"pad": "x" * payload_bytes}),
                        payload_bytes,
                        sent_at,
                        sent_at,
                        sent_at,
                        sent_at,
                    )
                    for i in range(n)
                ],
            )
    finally:
        conn.close()


def test_freed_pages_go_back_to_the_file_system_in_small_steps(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S):
        pass
    assert rows(db, "PRAGMA auto_vacuum") == [(2,)]  # incremental, set on a new database
    _insert_sent_rows(db, n=3000, sent_at=wall.now, payload_bytes=3000)
    (pages_before,) = rows(db, "PRAGMA page_count")[0]
    wall.advance(DAY_S + 1)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:
        assert outbox.summary().pruned_findings == 3000
    (pages_after,) = rows(db, "PRAGMA page_count")[0]
    (free_after,) = rows(db, "PRAGMA freelist_count")[0]
    # About 8 MiB (2048 pages) go back per pass; the rest are reused by new rows.
    assert 2000 <= pages_before - pages_after <= 2048 + 16
    assert free_after > 0


def test_an_older_database_is_pruned_but_never_vacuumed(tmp_path: Path) -> None:
    """A database made before incremental auto-vacuum keeps its size: no full VACUUM of a
    big file on the vehicle; its free pages are reused."""
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")  # as the first release created it
    conn.execute("CREATE TABLE placeholder (x)")
    conn.close()
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S):
        pass
    assert rows(db, "PRAGMA auto_vacuum") == [(0,)]
    _insert_sent_rows(db, n=1500, sent_at=wall.now, payload_bytes=3000)
    (pages_before,) = rows(db, "PRAGMA page_count")[0]
    wall.advance(DAY_S + 1)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:
        assert outbox.summary().pruned_findings == 1500
    assert rows(db, "PRAGMA page_count")[0][0] >= pages_before
    assert rows(db, "PRAGMA freelist_count")[0][0] > 1000


@pytest.mark.slow
def test_outbox_status_reports_what_was_pruned(tmp_path: Path) -> None:
    wall, mono = ManualClock(), ManualClock()
    db = tmp_path / "outbox.sqlite3"
    findings = [make_finding(g, T0 + minutes(i), seq=i) for i, g in enumerate((1, 3, 2))]
    jpegs = real_jpegs(3)
    with open_outbox(tmp_path, wall, mono, keep_sent_s=DAY_S) as outbox:
        for f, jpeg in zip(findings, jpegs, strict=True):
            outbox.add(f, jpeg)
        deliver_findings(outbox, [f.id for f in findings[:2]])
        deliver_images(outbox, [findings[0].id])
        point = outbox.add_track_point(fix(1))
        assert point is not None
        outbox.mark_track_sent([point])
        sizes = image_files(tmp_path)
        wall.advance(2 * DAY_S)
        outbox.prune_sent()
    # findings[0] went with its image; findings[1] stays: its image has not been sent yet.
    assert finding_ids(db) == {findings[1].id, findings[2].id}

    result = subprocess.run(
        [ROADPATROL, "outbox", "status", "--data-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pruned_findings"] == 1
    assert report["pruned_images"] == 1
    assert report["pruned_image_bytes"] == sizes[findings[0].id]
    assert report["pruned_track_points"] == 1
    assert report["stored"] == 3
    assert report["pending"] == 1

    text = subprocess.run(
        [ROADPATROL, "outbox", "status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.returncode == 0, text.stderr
    assert "pruned after sent 1 findings, 1 images" in text.stdout
    assert "1 track points" in text.stdout
