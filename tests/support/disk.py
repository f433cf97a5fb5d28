"""A real small disk for the disk-full tests: a tmpfs of a few MiB mounted by the test.

Mounting needs root (CI runs as root); elsewhere the tests that need it are skipped, saying
why. ``fill`` writes a ballast file until the kernel says ENOSPC, as a full disk does.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs of a few MiB to fill the disk needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "4m")
    try:
        yield disk
    finally:
        unmount(disk)


def fill(disk: Path, name: str = "ballast", *, check: bool = True) -> Path:
    """Fill ``disk`` to the last byte with a ballast file; returns its path. ``check``
    False when a running writer may free room meanwhile (by evicting)."""
    ballast = disk / name
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    if check:
        assert os.statvfs(disk).f_bavail == 0
    return ballast
