"""The free-space floor fits the disk it is on, the driver is told while photos are evicted,
and the outbox is the service user's only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config.loader import demo_config
from edge.outbox import Outbox
from edge.recording.recorder import Recorder
from edge.status import Alert

from support.disk import mount_tmpfs, unmount
from support.outbox import T0, make_finding, minutes, real_jpegs, rows

EXE = str(Path(sys.executable).with_name("roadpatrol"))
BIG = 10**12



@pytest.mark.slow
def test_the_default_floor_on_a_30_mib_disk_keeps_the_demos_photos(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "30m")
    try:
        data_dir = disk / "demo"
        proc = subprocess.run(
            [EXE, "demo", "--fast", "--headless", "--json", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        db = data_dir / "outbox.sqlite3"
        states = dict(rows(db, "SELECT image_state, count(*) FROM findings GROUP BY 1"))
        on_disk = len(list((data_dir / "images").glob("*.jpg")))
    finally:
        unmount(disk)
    assert summary["queued"] > 20
    # 500 MiB of the default floor on a 30 MiB disk evicted every photo; a share of it keeps
    # them all, and the start-up says what it keeps free instead.
    assert states.get("evicted", 0) == 0 and on_disk == states["pending"] == summary["queued"]
    assert "min_free_mb 500 MiB is more than 20% of the 30.0 MiB disk" in proc.stderr


@pytest.mark.slow
def test_the_driver_is_told_while_images_are_evicted_to_make_room(small_disk: Path) -> None:
    recorder = Recorder(demo_config(small_disk / "demo", fast=True), lockstep=True).start()
    try:
        assert recorder.wait_ended(120)
        recorder._refresh_outbox_stats()
        status = recorder.status()
    finally:
        recorder.stop()
    evicted = rows(
        small_disk / "demo" / "outbox.sqlite3",
        "SELECT count(*) FROM findings WHERE image_state = 'evicted'",
    )[0][0]
    assert evicted > 0  # 4 MiB cannot hold the demo's photos
    # The floor holds free space at the floor, so "free < floor" alone never fired.
    assert status.outbox.evicting and status.outbox.disk_low
    assert Alert.EVICTING_IMAGES in status.alerts and Alert.DISK_LOW in status.alerts
    assert status.outbox.disk_free_bytes is not None
    # The floor is kept for the images, checked before each one is written; the database's
    # own pages written after that check (the finding's row, the WAL) may take a few blocks
    # of it: on this machine's tmpfs 3,276 bytes under the floor were measured.
    sqlite_pages = 64 * 1024
    assert status.outbox.disk_free_bytes >= recorder.outbox.min_free_bytes - sqlite_pages


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outbox_files_are_private_to_the_service_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old_umask = os.umask(0o022)  # the usual one, which left everything world-readable
    try:
        with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
            f = make_finding(3, T0, seq=0)
            outbox.add(f, real_jpegs(1)[0])
            assert _mode(data_dir / "outbox.sqlite3-wal") == 0o600
            assert _mode(data_dir / "outbox.sqlite3-shm") == 0o600
        assert _mode(data_dir) == 0o700
        assert _mode(data_dir / "images") == 0o700
        assert _mode(data_dir / "outbox.sqlite3") == 0o600
        assert _mode(data_dir / "images" / f"{f.id}.jpg") == 0o600
        assert _mode(data_dir / "outbox.lock") == 0o600
        # An outbox made by an older version, world-readable, is narrowed at the next open.
        for path in (data_dir, data_dir / "images", data_dir / "outbox.sqlite3"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0).close()
    finally:
        os.umask(old_umask)
    assert _mode(data_dir) == 0o700 and _mode(data_dir / "images") == 0o700
    assert _mode(data_dir / "outbox.sqlite3") == 0o600


@pytest.mark.parametrize(("configured_mb", "disk"), [(500.0, "4m"), (0.0, "4m")])
def test_the_floor_in_force_is_said_once_at_start(
    tmp_path: Path, configured_mb: float, disk: str
) -> None:
    where = tmp_path / "disk"
    mount_tmpfs(where, disk)
    try:
        outbox = Outbox.open(
            where / "d", image_cap_bytes=BIG, min_free_bytes=int(configured_mb * 2**20)
        )
        floor, notes = outbox.min_free_bytes, list(outbox.notes)
        for i, jpeg in enumerate(real_jpegs(3)):
            outbox.add(make_finding(1, T0 + minutes(i), seq=i), jpeg)
        outbox.close()
    finally:
        unmount(where)
    assert 0 < floor <= 4 * 2**20 * 0.2
    assert len(notes) == 1 and f"min_free_mb {configured_mb:g} MiB" in notes[0]
