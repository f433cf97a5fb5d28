"""kill -9 while retention prunes: the database stays sound, no row points at a missing image,
and nothing unsent is lost."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import Fix, FixMode, FixQuality

from support import TESTS
from support.outbox import (
    DAY_S,
    T0,
    ManualClock,
    deliver_findings,
    deliver_images,
    make_finding,
    minutes,
    real_jpegs,
)

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

TESTS_DIR = TESTS  # where `support` is: the crash scripts import it
BULK = 1000

# Opens the outbox with retention on (a pass runs while opening), then prunes to the end.
PRUNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge.outbox import Outbox

    data_dir, now = Path(sys.argv[1]), float(sys.argv[2])
    print("ready", flush=True)
    with Outbox.open(
        data_dir, image_cap_bytes=10**12, min_free_bytes=0, keep_sent_s=0,
        clock=lambda: now,
    ) as outbox:
        while not outbox.prune_sent().done:
            pass
    print("done", flush=True)
    """
)


STORED = 100 + BULK  # findings stored in all


def build(data_dir: Path, wall: ManualClock) -> dict[str, set[str]]:
    """Through the Outbox, 100 findings with real JPEGs: 40 fully sent (prunable), 20 sent with
    the image still pending, 40 unsent; sent and unsent track points. Then BULK more fully
    sent findings with real JPEGs, written straight into the schema (a fast set-up), so that
    pruning lasts long enough for the kills to land in it."""
    jpegs = real_jpegs(6)
    kinds: dict[str, set[str]] = {"prunable": set(), "image_pending": set(), "unsent": set()}
    with Outbox.open(data_dir, image_cap_bytes=10**12, min_free_bytes=0, clock=wall) as outbox:
        for i in range(100):
            finding = make_finding(1 + i % 3, T0 + minutes(i), seq=i)
            outbox.add(finding, jpegs[i % 6])
            kind = "prunable" if i < 40 else "image_pending" if i < 60 else "unsent"
            kinds[kind].add(finding.id)
        deliver_findings(outbox, kinds["prunable"] | kinds["image_pending"])
        deliver_images(outbox, kinds["prunable"])
        points = [outbox.add_track_point(_fix(k)) for k in range(300)]
        outbox.mark_track_sent([p for p in points[:250] if p is not None])
    bulk = [(f"bulk{i:05d}", jpegs[i % 6]) for i in range(BULK)]
    for fid, jpeg in bulk:
        (data_dir / "images" / f"{fid}.jpg").write_bytes(jpeg)
    conn = sqlite3.connect(data_dir / "outbox.sqlite3")
    with conn:
        conn.executemany(
            "INSERT INTO findings (id, grade, captured_at_utc, payload, payload_bytes, "
            "stored_at, sent_at, receipted_at, image_name, image_bytes, image_state, "
            "image_sent_at, image_receipted_at) "
            "VALUES (?, 1, '2025-04-01T00:00:00.000000Z', '{}', 2, ?, ?, ?, ?, ?, 'sent', ?, ?)",
            [(fid, t, t, t, f"{fid}.jpg", len(j), t, t) for fid, j in bulk for t in [wall.now]],
        )
    conn.close()
    kinds["prunable"] |= {fid for fid, _ in bulk}
    return kinds


def _fix(k: int) -> Fix:
    return Fix(
        mono_ns=k,
        time_utc=T0 + minutes(k / 60),
        lat_deg=35.6 + k * 1e-5,
        lon_deg=140.1,
        mode=FixMode.FIX_3D,
        quality=FixQuality.GPS,
    )


def check_sound(data_dir: Path, kinds: dict[str, set[str]], where: str) -> tuple[int, int]:
    """The invariants after a crash; returns how many prunable findings are still there, and
    how many image files no row wants (deleted rows whose files the kill kept)."""
    conn = sqlite3.connect(data_dir / "outbox.sqlite3")  # read-write: replays the WAL
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
        stored = {r[0] for r in conn.execute("SELECT id FROM findings")}
        with_image = dict(
            conn.execute(
                "SELECT image_name, image_bytes FROM findings "
                "WHERE image_state IN ('pending', 'sent')"
            ).fetchall()
        )
        (unsent_points,) = conn.execute(
            "SELECT COUNT(*) FROM track WHERE sent_at IS NULL"
        ).fetchone()
    finally:
        conn.close()
    assert kinds["unsent"] | kinds["image_pending"] <= stored, where
    assert unsent_points == 50, where
    files = {p.name: p.stat().st_size for p in (data_dir / "images").glob("*.jpg")}
    for name, size in with_image.items():
        assert files.get(name) == size, f"{where}: row points at a missing image {name}"
    orphans = {n.removesuffix(".jpg") for n in files} - stored
    assert not orphans & (kinds["unsent"] | kinds["image_pending"]), where
    return len(kinds["prunable"] & stored), len(orphans)


def test_kill_9_while_pruning_leaves_a_sound_outbox(tmp_path: Path) -> None:
    wall = ManualClock()
    template = tmp_path / "template"
    kinds = build(template, wall)
    script = tmp_path / "pruner.py"
    script.write_text(PRUNER)
    seed = int(os.environ.get("ROADPATROL_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    # The code under test: the PYTHONPATH given (a checkout), else the installed package.
    # tests/ for `support`, the repository beside it for the real `edge` (not tests/edge).
    paths = [str(TESTS_DIR), str(TESTS_DIR.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def start_pruner(data_dir: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, str(script), str(data_dir), str(wall.now + DAY_S)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", first + (child.stderr.read() if child.stderr else "")
        return child

    # Kill at fractions of how long a whole pass takes on this machine, not at fixed delays,
    # so that the kills land inside the pruning on a fast machine as on a slow one.
    shutil.copytree(template, tmp_path / "timing")
    timing = start_pruner(tmp_path / "timing")
    started = time.monotonic()
    assert timing.stdout is not None and timing.stdout.readline() == "done\n"
    whole_s = time.monotonic() - started
    timing.wait(10)
    states = []
    for round_no, share in enumerate((0.05, 0.2, 0.35, 0.5, 0.7, 0.9)):
        where = f"seed {seed} round {round_no} (whole pass {whole_s:.3f} s)"
        data_dir = tmp_path / f"round{round_no}"
        shutil.copytree(template, data_dir)
        child = start_pruner(data_dir)
        time.sleep(whole_s * share * rng.uniform(0.8, 1.2))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        left, orphans = check_sound(data_dir, kinds, where)
        states.append((left, orphans))
        print(f"{where}: {left} of {len(kinds['prunable'])} prunable rows left, {orphans} orphans")

        # The next owner clears the orphans the kill left and finishes the job.
        with Outbox.open(
            data_dir, image_cap_bytes=10**12, min_free_bytes=0, keep_sent_s=0
        ) as outbox:
            while not outbox.prune_sent().done:
                pass
            summary = outbox.summary()
            remaining = {p.finding_id for p in outbox.pending_findings(1000)}
            assert remaining == kinds["unsent"], where
            assert {i.finding_id for i in outbox.pending_images(1000)} == kinds["image_pending"]
            assert summary.pruned_findings == len(kinds["prunable"]), where
            assert summary.pruned_track_points == 250, where
            assert summary.stored == STORED, where
        on_disk = {p.stem for p in (data_dir / "images").iterdir()}
        assert on_disk == kinds["unsent"] | kinds["image_pending"], where
        check_sound(data_dir, kinds, where)
    # The kills must have hit pruning in the middle at least once (some rows gone, or rows
    # gone before their files), or this proved little.
    assert any(0 < left < len(kinds["prunable"]) or orphans for left, orphans in states), (
        seed,
        states,
    )
