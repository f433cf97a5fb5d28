"""The publisher's pending-images query reads its index in order (no scan and sort of the whole
backlog at every call), and its order stays: grade 3 first, then by grade descending, oldest
first, ties by id."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from edge.outbox import Outbox, queries
from edge.types import Finding

from support.outbox import T0, make_finding, minutes, real_jpegs, rows

BIG = 10**12


def mixed_backlog(data_dir: Path) -> dict[str, Finding]:
    """Through the Outbox: findings of every grade, out of time order, with and without
    images, unsent, sent with the image still to send, and sent with the image sent too."""
    rng = random.Random(7)
    jpegs = real_jpegs(6)
    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        stored = {}
        for i in range(60):
            minute = rng.randrange(0, 30)  # equal capture times too: the id breaks the tie
            finding = make_finding(rng.randint(1, 3), T0 + minutes(minute), seq=i)
            outbox.add(finding, None if i % 7 == 0 else jpegs[i % 6])
            stored[finding.id] = finding
        ids = list(stored)
        rng.shuffle(ids)
        outbox.mark_findings_sent(ids[:45])
        outbox.mark_images_sent(ids[:10])
    return stored


def expected_order(db: Path, stored: dict[str, Finding]) -> list[str]:
    """Written out independently from the raw rows: images still to send of sent findings."""
    candidates = [
        fid
        for fid, sent_at, state in rows(db, "SELECT id, sent_at, image_state FROM findings")
        if sent_at is not None and state == "pending"
    ]
    return sorted(
        candidates, key=lambda fid: (-stored[fid].grade, stored[fid].captured_at_utc, fid)
    )


def plan_of_unsent_image_rows(db: Path, exclude: set[str]) -> str:
    """EXPLAIN QUERY PLAN of the very statement queries.unsent_image_rows runs."""
    conn = sqlite3.connect(db)
    try:
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        queries.unsent_image_rows(conn, 5, exclude)
        conn.set_trace_callback(None)
        (sql,) = [s for s in statements if "image_state" in s]
        return "\n".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    finally:
        conn.close()


def test_pending_images_read_their_index_in_order_and_keep_the_order(tmp_path: Path) -> None:
    stored = mixed_backlog(tmp_path)
    db = tmp_path / "outbox.sqlite3"
    expected = expected_order(db, stored)
    grades = [stored[fid].grade for fid in expected]
    assert len(expected) >= 20 and {1, 2, 3} <= set(grades)  # a real mix to order

    for exclude in (set(), set(expected[:4])):
        plan = plan_of_unsent_image_rows(db, exclude)
        assert "USING COVERING INDEX findings_images_to_send" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        assert "SCAN findings" not in plan, plan

    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        assert [p.finding_id for p in outbox.pending_images(100)] == expected
        # Page by page, as the publisher asks (leaving out what it has in flight).
        paged: list[str] = []
        while batch := outbox.pending_images(4, exclude=paged):
            paged += [p.finding_id for p in batch]
        assert paged == expected


def test_an_outbox_with_the_old_index_gets_the_new_one_at_open(tmp_path: Path) -> None:
    stored = mixed_backlog(tmp_path)
    db = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP INDEX findings_images_to_send")
    conn.execute(
        "CREATE INDEX findings_unsent_images ON findings (grade DESC, captured_at_utc, id) "
        "WHERE sent_at IS NOT NULL AND image_state = 'pending'"
    )
    conn.close()
    assert "TEMP B-TREE" in plan_of_unsent_image_rows(db, set())  # what the old one gave

    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        indexes = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type='index'")}
        assert "findings_images_to_send" in indexes and "findings_unsent_images" not in indexes
        assert "TEMP B-TREE" not in plan_of_unsent_image_rows(db, set())
        assert [p.finding_id for p in outbox.pending_images(100)] == expected_order(db, stored)
