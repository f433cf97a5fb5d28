"""kill -9 of a process writing findings at random moments loses nothing it reported as stored."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from edge.outbox import Outbox

from support import TESTS

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

TESTS_DIR = TESTS  # where `support` is: the crash scripts import it

# The writer: stores findings (most with a real JPEG) under a small image cap, so that
# evictions run too, and prints each id only after add() returned.
WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[3], str(Path(sys.argv[3]).parent)]  # + repo: not tests/edge
    from support.outbox import T0, make_finding, minutes, real_jpegs
    from edge.outbox import Outbox

    data_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    jpegs = real_jpegs(6)
    outbox = Outbox.open(data_dir, image_cap_bytes=600_000, min_free_bytes=0)
    print("ready", flush=True)
    i = 0
    while True:
        finding = make_finding(rng.randint(1, 3), T0 + minutes(i), seq=i)
        outbox.add(finding, jpegs[i % 6] if rng.random() < 0.8 else None)
        print(finding.id, flush=True)
        outbox.count_frame(0)
        if i % 5 == 4:
            for p in outbox.pending_findings(2):
                outbox.mark_finding_sent(p.finding_id)
        i += 1
    """
)


def run_and_kill(script: Path, data_dir: Path, seed: int, rng: random.Random) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), str(seed), str(TESTS_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first == "ready\n", first + (child.stderr.read() if child.stderr else "")
    reported: list[str] = []
    reader = threading.Thread(target=lambda: reported.extend(line.strip() for line in child.stdout))
    reader.start()
    time.sleep(rng.uniform(0.05, 0.8))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    assert child.returncode == -signal.SIGKILL
    return [r for r in reported if r]


def check_consistent(data_dir: Path, committed: set[str], where: str) -> None:
    db = data_dir / "outbox.sqlite3"
    conn = sqlite3.connect(db)  # read-write: lets SQLite replay the WAL as after a power cut
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
        stored = {row[0] for row in conn.execute("SELECT id FROM findings")}
        with_image = dict(
            conn.execute(
                "SELECT image_name, image_bytes FROM findings "
                "WHERE image_state IN ('pending', 'sent')"
            ).fetchall()
        )
        named = {row[0] for row in conn.execute("SELECT image_name FROM findings")}
    finally:
        conn.close()
    missing = committed - stored
    assert not missing, (
        f"{where}: {len(missing)} reported findings lost, e.g. {sorted(missing)[:3]}"
    )
    files = {p.name: p.stat().st_size for p in (data_dir / "images").glob("*.jpg")}
    # Never a row whose image is missing or partly written.
    for name, size in with_image.items():
        assert files.get(name) == size, f"{where}: {name}"
    # At most the one image whose row had not committed yet is unknown to the database
    # (files of evicted rows may remain until the next open deletes them).
    assert len(set(files) - named) <= 1, where


def test_kill_9_during_writes_loses_no_committed_finding(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    data_dir = tmp_path / "data"
    seed = int(os.environ.get("ROADPATROL_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    committed: set[str] = set()
    for round_no in range(6):
        reported = run_and_kill(script, data_dir, seed + round_no, rng)
        assert reported, f"seed {seed}: the writer stored nothing before the kill"
        committed.update(reported)
        print(f"seed {seed} round {round_no}: {len(reported)} reported")
        check_consistent(data_dir, committed, f"seed {seed} round {round_no}")

    with Outbox.open(data_dir, image_cap_bytes=600_000, min_free_bytes=0) as outbox:
        summary = outbox.summary()
        assert summary.stored >= len(committed)
        assert summary.image_bytes_on_disk <= 600_000
        on_disk = {p.name for p in (data_dir / "images").iterdir()}
        conn = sqlite3.connect(data_dir / "outbox.sqlite3")
        expected = {
            row[0]
            for row in conn.execute(
                "SELECT image_name FROM findings WHERE image_state IN ('pending', 'sent')"
            )
        }
        conn.close()
        assert on_disk == expected  # orphans cleared by the next owner
