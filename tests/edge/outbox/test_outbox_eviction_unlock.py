"""Eviction commits its rows under the write lock and deletes the files after releasing it:
a writer is not held up by hundreds of unlinks, a late unlink never hits a newer file of the
same name, and a kill -9 between the commit and the unlinks leaves only orphans that the next
open deletes. Real files on disk; the unlink is injected only to hold it at a known moment."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import Finding, Fix, FixMode, FixQuality

from support import TESTS
from support.outbox import T0, make_finding, minutes, real_jpegs, rows

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

BIG = 10**12
HELD_S = 10.0  # how long a held unlink waits before giving up (a failing test, not a hang)
TESTS_DIR = TESTS  # where `support` is: the crash scripts import it


def fill(outbox: Outbox, n: int) -> list[Finding]:
    jpegs = real_jpegs(6)
    stored = []
    for i in range(n):
        finding = make_finding(1 + i % 2, T0 + minutes(i), seq=i)
        assert outbox.add(finding, jpegs[i % 6])
        stored.append(finding)
    return stored


def image_states(db: Path) -> dict[str, str]:
    return dict(rows(db, "SELECT id, image_state FROM findings"))


class HeldUnlink:
    """Deletes files for real, but holds the first delete until the test lets it go."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self.deleted: list[str] = []

    def __call__(self, path: Path) -> None:
        if not self.holding.is_set():
            self.events.append("deletes started")
            self.holding.set()
            released = self.release.wait(HELD_S)
            self.events.append("deletes resumed" if released else "deletes gave up waiting")
        path.unlink(missing_ok=True)
        self.deleted.append(path.stem)


def test_a_writer_commits_while_a_big_eviction_is_deleting_its_files(tmp_path: Path) -> None:
    held = HeldUnlink()
    db = tmp_path / "outbox.sqlite3"
    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0, unlink=held) as outbox:
        stored = fill(outbox, 300)
        newcomer = make_finding(3, T0 + minutes(1000), seq=1000)
        jpeg = real_jpegs(1, start=7)[0]
        outbox.image_cap_bytes = len(jpeg) + 4096  # room for the newcomer (and its EXIF) only
        evictor = threading.Thread(target=outbox.add, args=(newcomer, jpeg))
        evictor.start()
        try:
            assert held.holding.wait(HELD_S), "the eviction never started deleting"
            # Rows first: every old image is already evicted in the database (more than one
            # commit batch of them), while all the files are still there.
            states = image_states(db)
            assert {states[f.id] for f in stored} == {"evicted"}
            assert states[newcomer.id] == "pending"
            assert all((tmp_path / "images" / f"{f.id}.jpg").is_file() for f in stored)
            # The write lock is free while the files go: another writer commits now.
            later = make_finding(2, T0 + minutes(1001), seq=1001)
            assert outbox.add(later, None)
            fix = Fix(
                mono_ns=1,
                time_utc=T0,
                lat_deg=35.6,
                lon_deg=140.1,
                mode=FixMode.FIX_3D,
                quality=FixQuality.GPS,
            )
            assert outbox.add_track_point(fix) is not None
            held.events.append("writer committed")
        finally:
            held.release.set()
            evictor.join(HELD_S)
        assert not evictor.is_alive()
        assert held.events == ["deletes started", "writer committed", "deletes resumed"]
        assert sorted(held.deleted) == sorted(f.id for f in stored)
        on_disk = {p.stem for p in (tmp_path / "images").iterdir()}
        assert on_disk == {newcomer.id}
        summary = outbox.summary()
        assert summary.evictions == len(stored)
        assert (
            summary.image_bytes_on_disk
            == (tmp_path / "images" / f"{newcomer.id}.jpg").stat().st_size
        )
    assert image_states(db)[later.id] == "none"


def test_a_new_image_under_an_evicted_name_survives_the_late_unlink(tmp_path: Path) -> None:
    """A repeat sighting of an unsent finding whose image was just evicted writes <id>.jpg
    again; the eviction's unlink of the old file, still to come, must not delete it."""
    held = HeldUnlink()
    db = tmp_path / "outbox.sqlite3"
    with Outbox.open(tmp_path, image_cap_bytes=BIG, min_free_bytes=0, unlink=held) as outbox:
        stored = fill(outbox, 4)
        first_victim = stored[0]  # grade 1, the oldest
        jpegs = real_jpegs(2, start=8)
        outbox.image_cap_bytes = 1  # every image must go
        evictor = threading.Thread(
            target=outbox.add, args=(make_finding(3, T0 + minutes(99), seq=99), jpegs[0])
        )
        evictor.start()
        replacer = threading.Thread(target=outbox.replace_unsent, args=(first_victim, jpegs[1]))
        try:
            assert held.holding.wait(HELD_S)
            assert image_states(db)[first_victim.id] == "evicted"
            replacer.start()
            # Without the guard the new file would be written now and deleted below; with it
            # the replacer waits for the old file to go. Either way, give it the chance.
            replacer.join(1.0)
        finally:
            held.release.set()
            evictor.join(HELD_S)
            if replacer.ident is not None:
                replacer.join(HELD_S)
        assert not evictor.is_alive() and not replacer.is_alive()
        assert first_victim.id in held.deleted  # the old file did go
    # The replacement's image was written after that, and its row points at it.
    path = tmp_path / "images" / f"{first_victim.id}.jpg"
    assert path.is_file(), "the late unlink deleted the replacement image"
    ((state, size),) = rows(
        db, "SELECT image_state, image_bytes FROM findings WHERE id = ?", (first_victim.id,)
    )
    assert state == "pending" and size == path.stat().st_size


# Opens the outbox under a small cap; eviction at open commits, then the first unlink prints
# and blocks until the parent kills the process.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge.outbox import Outbox

    def unlink(path: Path) -> None:
        print("deleting", path.name, flush=True)
        sys.stdin.readline()  # never answered: the parent kills us here

    Outbox.open(Path(sys.argv[1]), image_cap_bytes=int(sys.argv[2]), min_free_bytes=0,
                unlink=unlink)
    print("opened", flush=True)
    """
)


def test_kill_9_between_the_eviction_commit_and_its_unlinks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Outbox.open(data, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        stored = fill(outbox, 12)
    newest = stored[-1]
    cap = (data / "images" / f"{newest.id}.jpg").stat().st_size
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(data), str(cap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("deleting "), line + (child.stderr.read() if child.stderr else "")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    db = data / "outbox.sqlite3"
    kept = dict(
        rows(
            db,
            "SELECT image_name, image_bytes FROM findings WHERE image_state IN ('pending', 'sent')",
        )
    )
    evicted = {r[0] for r in rows(db, "SELECT id FROM findings WHERE image_state = 'evicted'")}
    # The eviction committed (lowest grade, oldest first) ...
    assert evicted and newest.id not in evicted
    # ... no row points at a file that is gone ...
    for name, size in kept.items():
        assert (data / "images" / name).stat().st_size == size
    # ... and every evicted file is still there, an orphan, as the kill came before any unlink.
    files = {p.stem for p in (data / "images").glob("*.jpg")}
    assert evicted <= files

    with Outbox.open(data, image_cap_bytes=cap, min_free_bytes=0) as outbox:
        summary = outbox.summary()
        assert summary.evictions == len(evicted)  # nothing evicted twice
        assert summary.image_bytes_on_disk == sum(kept.values()) <= cap
    assert {p.name for p in (data / "images").iterdir()} == set(kept)
