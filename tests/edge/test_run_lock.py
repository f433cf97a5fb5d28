"""A second `roadpatrol run` on the same data directory: one line naming the first, exit 2,
and nothing of the first one's touched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.vehicle import looping_demo_config

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))


def _config(tmp_path: Path, data: Path) -> Path:
    return looping_demo_config(
        tmp_path / "vehicle.toml",
        vehicle_id="lock-test",
        data_dir=data,
        fps=4.0,
        extra="[mqtt]\nenabled = false",
    )


def test_second_run_on_one_data_dir_names_the_first_and_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = _config(tmp_path, data)
    first = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = data / "recorder.sock"
    try:
        deadline = time.monotonic() + 120
        while not socket.exists() and time.monotonic() < deadline:
            assert first.poll() is None, "the first recorder stopped"
            time.sleep(0.1)
        assert socket.exists(), "the first recorder never served its status socket"
        socket_inode = socket.stat().st_ino
        second = subprocess.run(
            [EXE, "run", "--headless", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        demo = subprocess.run(
            [EXE, "demo", "--headless", "--fast", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.poll() is None, "the second start stopped the first recorder"
        assert socket.stat().st_ino == socket_inode  # its socket was left alone
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr  # before anything is opened or logged
    assert f"another recorder (pid {first.pid})" in lines[0] and str(data) in lines[0]
    assert demo.returncode == 2 and f"pid {first.pid}" in demo.stderr
    assert "Traceback" not in second.stderr + demo.stderr
    # Released on exit: the next start gets it.
    assert not socket.exists()  # the first one's, removed as it stopped
    again = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # Its lock, then its socket (served once its signal handlers are in place).
        while (data / "recorder.lock").read_text().strip() != str(again.pid) or not (
            socket.exists()
        ):
            assert again.poll() is None, again.stderr.read() if again.stderr else ""
            assert time.monotonic() < deadline, "the restart never took the lock"
            time.sleep(0.1)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
