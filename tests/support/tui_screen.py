"""Shared pieces for the driver-screen tests: a fixed Status, screen text, time zone."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.app import App

from edge.status import (
    Alert,
    CameraStatus,
    GpsStatus,
    LinkStatus,
    ModelStatus,
    OutboxStatus,
    RecentFinding,
    Status,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"

_GRADES = (3, 2, 1, 1)
_TYPES = (("D40",), ("D20", "D00"), ("D00",), ("D10",))


def fixed_status(*, paused: bool = False, alerts: tuple[str, ...] | None = None) -> Status:
    """A busy shift, written out by hand so that snapshots never move."""
    recent = tuple(
        RecentFinding(
            id=f"0192f3a4-5b6c-7d8e-9f00-1a2b3c4d5e{i:02d}",
            captured_at_utc=f"2024-05-14T03:{10 + i:02d}:05+00:00",
            grade=_GRADES[i % 4],
            type_codes=() if i == 5 else _TYPES[i % 4],
            origin="manual" if i == 5 else "model",
            distance_m=20_000.0 + i * 150,
        )
        for i in range(12)
    )
    return Status(
        recording=True,
        vehicle_id="chiba-07",
        started_at_utc="2024-05-14T00:30:00+00:00",
        distance_m=23_456.0,
        findings_by_grade={"0": 1234, "1": 12, "2": 5, "3": 3, "manual": 1},
        camera=CameraStatus(connected=True, source="cam0", fps=15.0, frames=5000, dropped_frames=3),
        gps=GpsStatus(
            mode=3,
            quality="gps",
            sats_used=9,
            hdop=0.9,
            speed_mps=11.7,
            lat_deg=35.606214,
            lon_deg=140.123312,
            fix_age_s=0.4,
        ),
        model=ModelStatus(
            model_id="rdd-lite-1.2.0",
            name="rdd-lite",
            version="1.2.0",
            infer_ms=6.1,
            graded=4000,
            paused=paused,
        ),
        outbox=OutboxStatus(
            pending=12,
            pending_bytes=3_400_000,
            oldest_age_s=300,
            stored=21,
            disk_free_bytes=12_300_000_000,
        ),
        link=LinkStatus(
            enabled=True,
            connected=False,
            offline_since_utc="2024-05-14T03:12:00+00:00",
            last_acked_id="0192f3a4-5b6c-7d8e-9f00-1a2b3c4d5e6f",
        ),
        recent=recent,
        alerts=(Alert.NO_GPS_FIX, Alert.DISK_LOW) if alerts is None else alerts,
    )


class FixedControl:
    """Serves one Status and notes the crew's commands: for snapshots, which must not move."""

    def __init__(self, status: Status) -> None:
        self.fixed = status
        self.marks = 0
        self.paused_calls: list[bool] = []
        self.calls = threading.Event()

    def status(self) -> Status:
        return self.fixed

    def mark_manual(self) -> str | None:
        self.marks += 1
        self.calls.set()
        return f"manual-{self.marks}"

    def set_paused(self, paused: bool) -> None:
        self.paused_calls.append(paused)
        self.calls.set()


def screen_text(app: App[object]) -> str:
    """What the terminal shows now, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def utc_clock() -> Iterator[None]:
    """Local time = UTC, so the times on the screen do not depend on the test machine."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s`` passes; the result of the last try."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


class ScreenProcess:
    """`roadpatrol tui` (or ``program``) in a real pseudo-terminal, its output drained so it
    never blocks."""

    def __init__(
        self,
        args: list[str],
        size: tuple[int, int] = (100, 30),
        program: list[str] | None = None,
    ) -> None:
        import fcntl
        import pty
        import struct
        import subprocess
        import sys
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "COLUMNS": str(size[0]),
            "LINES": str(size[1]),
        }
        self.proc = subprocess.Popen(
            [*(program or [sys.executable, "-m", "edge", "tui"]), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=REPO,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    @property
    def output(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", errors="replace")

    def press(self, key: str) -> None:
        os.write(self._master, key.encode())

    def kill(self) -> int:
        import signal

        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._reader.join(timeout=5.0)  # the last output, read before the pty goes
        with contextlib.suppress(OSError):
            os.close(self._master)


@pytest.fixture
def demo_recorder(tmp_path: Path) -> Iterator[object]:
    """The real recorder on the bundled demo drive, paced like a real camera."""
    from edge.config.loader import demo_config
    from edge.recording.recorder import Recorder

    recorder = Recorder(demo_config(tmp_path, fast=False))
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


async def pilot_wait(pilot: object, predicate: object, timeout_s: float) -> bool:
    """Let the app run (timers, workers) until ``predicate()`` or ``timeout_s``."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.1)  # type: ignore[attr-defined]
    return bool(predicate())
