"""Disk cap, free-space floor, and a corrupt database at start."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import Finding

from support.outbox import T0, make_finding, minutes, real_jpegs, rows

BIG = 10**12


@dataclass
class Stored:
    finding: Finding
    image_sent: bool
    size: int


def expected_victims(images: list[Stored], cap: int) -> list[str]:
    """The rule, written out independently: sent images first, then lowest grade, oldest."""
    order = sorted(
        images, key=lambda s: (not s.image_sent, s.finding.grade, s.finding.captured_at_utc)
    )
    total = sum(s.size for s in images)
    victims = []
    for s in order:
        if total <= cap:
            break
        victims.append(s.finding.id)
        total -= s.size
    return victims


def on_disk(data_dir: Path) -> set[str]:
    return {p.stem for p in (data_dir / "images").glob("*.jpg")}


def test_over_the_cap_sent_then_lowest_grade_oldest_images_go_first(tmp_path: Path) -> None:
    plan = [(1, 0, True), (3, 1, False), (1, 2, False), (2, 3, True), (2, 4, False), (1, 5, False)]
    # Smallest pictures for the plan, the largest for the newcomer that must push others out.
    jpegs = sorted(real_jpegs(20), key=len)
    assert len(jpegs[-1]) > len(jpegs[len(plan) - 1]) + 1000
    stored: list[Stored] = []
    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        for (grade, minute, sent), jpeg in zip(plan, jpegs, strict=False):
            f = make_finding(grade, T0 + minutes(minute), seq=minute)
            outbox.add(f, jpeg)
            size = (tmp_path / "images" / f"{f.id}.jpg").stat().st_size
            stored.append(Stored(f, sent, size))
            if sent:
                outbox.mark_finding_sent(f.id)
                outbox.mark_image_sent(f.id)
    sent_bytes = sum(s.size for s in stored if s.image_sent)
    cap = sum(s.size for s in stored) - sent_bytes - 1  # forces one unsent image out too
    victims = expected_victims(stored, cap)
    assert len(victims) == 3

    with Outbox.open(tmp_path, image_cap_bytes=cap, min_free_bytes=0) as outbox:
        assert on_disk(tmp_path) == {s.finding.id for s in stored} - set(victims)
        summary = outbox.summary()
        assert summary.evictions == 3
        assert summary.evicted_bytes == sum(s.size for s in stored if s.finding.id in victims)
        assert summary.image_bytes_on_disk <= cap
        assert summary.stored == len(plan)  # records are never dropped
        unsent = {s.finding.id for s in stored if not s.image_sent}
        assert {p.finding_id for p in outbox.pending_findings(100)} == unsent
        outbox.mark_findings_sent(unsent)
        offered = {i.finding_id for i in outbox.pending_images(100)}
        assert offered == unsent - set(victims)

        # A new grade-3 image pushes the next lowest-grade, oldest unsent ones out.
        newcomer = make_finding(3, T0 + minutes(10), seq=10)
        outbox.add(newcomer, jpegs[-1])
        new_size = rows(
            tmp_path / "outbox.sqlite3",
            "SELECT image_bytes FROM findings WHERE id = ?",
            (newcomer.id,),
        )[0][0]
        left = [s for s in stored if s.finding.id not in victims]
        for s in left:
            s.image_sent = False  # marked sent as findings only; their images are unsent
        more = expected_victims([*left, Stored(newcomer, False, new_size)], cap)
        assert more, "the test must push something out"
        assert on_disk(tmp_path) == {s.finding.id for s in left} - set(more) | (
            set() if newcomer.id in more else {newcomer.id}
        )
        assert outbox.summary().evictions == 3 + len(more)

    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        assert outbox.summary().evictions == 3 + len(more)  # persisted
        assert outbox.summary().stored == len(plan) + 1


def test_a_file_that_is_not_a_database_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"this was never a database\n" * 200
    (tmp_path / "outbox.sqlite3").write_bytes(garbage)
    (tmp_path / "images").mkdir()
    old_image = tmp_path / "images" / "0190aaaa-0000-7000-8000-000000000002.jpg"
    old_image.write_bytes(real_jpegs(1)[0])

    with (
        caplog.at_level(logging.WARNING),
        Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox,
    ):
        moved = outbox.recovered_from
        assert moved is not None
        assert moved.parent == tmp_path
        assert moved.name.startswith("outbox.sqlite3.corrupt-")
        assert moved.read_bytes() == garbage
        # The images of the lost rows are kept beside it, not deleted as orphans.
        tag = moved.name.removeprefix("outbox.sqlite3.")
        assert (tmp_path / f"images.{tag}" / old_image.name).is_file()
        f = make_finding(3)
        assert outbox.add(f, real_jpegs(1)[0])
        assert [p.finding_id for p in outbox.pending_findings(5)] == [f.id]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "corrupt" in warning and str(moved) in warning


@pytest.mark.slow
def test_a_database_with_damaged_pages_is_moved_aside_and_salvaged(tmp_path: Path) -> None:
    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        for i in range(300):
            outbox.add(make_finding(1 + i % 3, T0 + minutes(i), seq=i), None)
    db = tmp_path / "outbox.sqlite3"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    size = db.stat().st_size
    page = 4096
    assert size > 20 * page
    rng = random.Random(3)
    with open(db, "r+b") as fh:
        for n in (5, 9, 14):  # scribble over a few pages in the middle of the file
            fh.seek(n * page + 100)
            fh.write(rng.randbytes(page - 200))
        fh.flush()
        os.fsync(fh.fileno())
    damaged = db.read_bytes()

    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        assert outbox.recovered_from is not None
        assert outbox.recovered_from.read_bytes() == damaged
        # The scribbles hit index pages: every record is read back into the new database.
        assert outbox.summary().stored == 300
        assert any("salvaged 300 findings" in note for note in outbox.notes)
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
