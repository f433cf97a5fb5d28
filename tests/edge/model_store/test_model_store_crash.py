"""kill -9 at random moments of `model install --activate` and `model activate`: afterwards
exactly one valid package is active and no half-copied package is visible."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.model_store import ModelStore

from support import REPO
from support.model_store import SHIPPED_INT8, copy_package, make_keys

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

ROUNDS = 5


def _roadpatrol(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_after(proc: subprocess.Popen[bytes], delay_s: float) -> None:
    time.sleep(delay_s)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _assert_one_valid_active(store: ModelStore, allowed: set[str]) -> str:
    active = store.active_id()
    assert active in allowed
    store.verify_installed(active)  # hash, size and signature of what would grade frames
    for model_id in store.installed_ids():  # nothing half-copied under a final name
        store.verify_installed(model_id)
    return active


@pytest.fixture
def store_with_one(tmp_path: Path) -> tuple[ModelStore, Path]:
    private, public = make_keys(tmp_path / "keys")
    store = ModelStore(tmp_path / "data" / "models", (public,))
    first = copy_package(SHIPPED_INT8, tmp_path / "pkg-0", version="1.0.0", key=private)
    store.install(first, activate=True)
    return store, private


def test_kill_9_during_install_and_activate_leaves_one_valid_active_model(
    tmp_path: Path, store_with_one: tuple[ModelStore, Path]
) -> None:
    store, private = store_with_one
    rng = random.Random(6)
    args = ["--data-dir", str(tmp_path / "data"), "--trusted-key", str(store.trusted_keys[0])]
    allowed = {"road-damage-1.0.0"}
    killed = 0
    for round_ in range(1, ROUNDS + 1):
        version = f"1.0.{round_}"
        package = copy_package(
            SHIPPED_INT8, tmp_path / f"pkg-{round_}", version=version, key=private
        )
        allowed.add(f"road-damage-{version}")
        proc = _roadpatrol("model", "install", str(package), "--activate", *args)
        _kill_after(proc, rng.uniform(0.2, 2.5))
        killed += proc.returncode == -signal.SIGKILL
        _assert_one_valid_active(store, allowed)

    installed = store.installed_ids()
    for round_ in range(ROUNDS * 2):
        target = installed[round_ % len(installed)]
        proc = _roadpatrol("model", "activate", target, *args)
        _kill_after(proc, rng.uniform(0.2, 1.5))
        killed += proc.returncode == -signal.SIGKILL
        _assert_one_valid_active(store, allowed)

    assert killed > 0  # the test really interrupted something
    # The store still works afterwards: leftovers are cleared and a new install goes through.
    last = copy_package(SHIPPED_INT8, tmp_path / "pkg-last", version="2.0.0", key=private)
    store.install(last, activate=True)
    assert _assert_one_valid_active(store, {"road-damage-2.0.0"}) == "road-damage-2.0.0"
    assert not list(store.root.glob(".staging-*"))
