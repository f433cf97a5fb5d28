"""A damaged outbox gives back what it can: set aside, salvaged at start and by
`roadpatrol outbox recover`, idempotently; pictures rebuild the records nothing else has."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest

from edge.cli import main
from edge.outbox import Outbox
from edge.wire.serialize import finding_to_dict

from support.outbox import T0, make_finding, minutes, real_jpegs, rows

BIG = 10**12
PAGE = 4096


def _write(data_dir: Path, n: int, image_every: int) -> dict[str, dict]:
    """``n`` findings, every ``image_every``-th with a real JPEG; their JSON by id."""
    jpegs = real_jpegs(4)
    written = {}
    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        for i in range(n):
            f = make_finding(1 + i % 3, T0 + minutes(i), seq=i)
            outbox.add(f, jpegs[i % 4] if i % image_every == 0 else None)
            written[f.id] = finding_to_dict(f)
    return written


def _garbage_in_the_middle(db: Path, seed: int = 0, size: int = 8192) -> None:
    middle = (db.stat().st_size // 2) // PAGE * PAGE
    with open(db, "r+b") as fh:
        fh.seek(middle)
        fh.write(random.Random(seed).randbytes(size))
        fh.flush()
        os.fsync(fh.fileno())


def _payloads(db: Path) -> dict[str, dict]:
    return {fid: json.loads(p) for fid, p in rows(db, "SELECT id, payload FROM findings")}


# Seed 0 damages table rows an index still names; seed 2 also the index page naming them.
@pytest.mark.slow
@pytest.mark.parametrize("seed_offset", [0, 2])
def test_8_kb_of_garbage_sets_the_outbox_aside_and_every_readable_finding_is_sent(
    tmp_path: Path, seed_offset: int, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    written = _write(data_dir, 900 + 40 * seed_offset, image_every=3)
    db = data_dir / "outbox.sqlite3"
    _garbage_in_the_middle(db, seed_offset)

    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        moved = outbox.recovered_from
        assert moved is not None and moved.name.startswith("outbox.sqlite3.corrupt-")
        note = next(n for n in outbox.notes if "salvaged" in n)
        pending = {p.finding_id for p in outbox.pending_findings(10_000)}
    back = _payloads(db)
    # Whatever came back is exactly what was written, and it is queued to be sent.
    assert set(back) <= set(written) and set(back) == pending
    for fid, payload in back.items():
        if payload["model_id"] != "recovered-from-image":
            assert payload == written[fid]
    lost = set(written) - set(back)
    # 8 KiB is two pages: at most their rows are gone, and the rest is said in the note.
    assert len(lost) <= 12, f"{len(lost)} of {len(written)} findings not salvaged"
    assert f"salvaged {len(back)} findings" in note and f"{len(lost)} unreadable" in note
    # Every finding that had a picture is back, from its row or rebuilt from the picture.
    with_image = {fid for i, fid in enumerate(written) if i % 3 == 0}
    assert with_image <= set(back)
    on_disk = {p.stem for p in (data_dir / "images").glob("*.jpg")}
    assert with_image <= on_disk

    # Running it again by hand adds nothing, and says so.
    assert main(["outbox", "recover", str(moved), "--data-dir", str(data_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[0])
    assert report["salvaged"] == 0 and report["already_present"] >= len(back) - len(lost)
    assert set(_payloads(db)) == set(back)


@pytest.mark.slow
def test_recover_by_hand_salvages_a_damaged_copy_into_a_fresh_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    written = _write(old, 300, image_every=2)
    _garbage_in_the_middle(old / "outbox.sqlite3")
    live = tmp_path / "live"

    code = main(["outbox", "recover", str(old / "outbox.sqlite3"), "--data-dir", str(live)])

    assert code == 0
    line = capsys.readouterr().out
    back = _payloads(live / "outbox.sqlite3")
    assert set(back) <= set(written) and len(back) >= len(written) - 12
    assert f"salvaged {len(back)} findings" in line
    assert {fid for i, fid in enumerate(written) if i % 2 == 0} <= set(back)


def test_recover_refuses_the_live_outbox_and_a_missing_file(tmp_path: Path) -> None:
    _write(tmp_path, 3, image_every=1)
    assert (
        main(["outbox", "recover", str(tmp_path / "outbox.sqlite3"), "--data-dir", str(tmp_path)])
        == 2
    )
    assert main(["outbox", "recover", str(tmp_path / "nope"), "--data-dir", str(tmp_path)]) == 2


def test_a_column_added_by_a_later_schema_is_carried_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows are copied by the columns both databases share, so a new column travels too."""
    old, live = tmp_path / "old", tmp_path / "live"
    written = _write(old, 5, image_every=5)
    _write(live, 1, image_every=5)
    for db in (old / "outbox.sqlite3", live / "outbox.sqlite3"):
        conn = sqlite3.connect(db)
        conn.execute("ALTER TABLE findings ADD COLUMN delivery TEXT NOT NULL DEFAULT 'queued'")
        conn.commit()
        conn.close()
    conn = sqlite3.connect(old / "outbox.sqlite3")
    conn.execute("UPDATE findings SET delivery = 'received-by-office'")
    conn.commit()
    conn.close()

    assert main(["outbox", "recover", str(old / "outbox.sqlite3"), "--data-dir", str(live)]) == 0

    got = dict(rows(live / "outbox.sqlite3", "SELECT id, delivery FROM findings"))
    assert {fid: got[fid] for fid in written} == dict.fromkeys(written, "received-by-office")
    assert "salvaged 5 findings" in capsys.readouterr().out
