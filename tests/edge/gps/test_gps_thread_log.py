"""GpsThread on a real pseudo-terminal: source errors reach the log once per state change, and
"clock not set" means the clock is really unknown."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.gps.history import FixHistory
from edge.gps.sources import SerialNmeaSource, SourceStats
from edge.gps.thread import GpsThread
from edge.types import Fix

from support.gps import Pty, epoch_bursts, wait_until


class CountingSource:
    """The real serial source, counting the thread's reads (each one retries the open)."""

    def __init__(self, source: SerialNmeaSource) -> None:
        self.inner = source
        self.reads = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def read(self, timeout_s: float) -> Fix | None:
        with self._lock:
            self.reads += 1
        return self.inner.read(timeout_s)

    def stats(self) -> SourceStats:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def _gps_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "edge.gps.thread" and r.levelno == level
    ]


def test_a_port_that_cannot_be_opened_is_logged_once_per_state_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.gps.thread")
    link = tmp_path / "gps0"  # not plugged in yet
    source = CountingSource(
        SerialNmeaSource(
            str(link), 9600, idle_flush_s=0.05, backoff_initial_s=0.02, backoff_max_s=0.05
        )
    )
    history = FixHistory()
    thread = GpsThread(source, history, read_timeout_s=0.1)
    port = Pty()
    thread.start()
    try:
        wait_until(lambda: _gps_lines(caplog, logging.WARNING), 10, "a warning")
        start = source.reads
        wait_until(lambda: source.reads >= start + 5, 10, "five more failed opens")
        os.symlink(port.path, link)
        wait_until(lambda: source.stats().connected, 10, "the port opened")
        port.write_in_background(b"".join(epoch_bursts()[:3]))
        wait_until(lambda: history.latest() is not None, 10, "a fix")
        wait_until(lambda: any("receiving again" in m for m in _gps_lines(caplog)), 10, "log")
    finally:
        thread.stop()
        port.close()
    warnings = _gps_lines(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings  # retried at least 6 times, logged once
    assert f"GPS serial:{link}@9600: cannot open {link}" in warnings[0]
    again = _gps_lines(caplog)
    assert len(again) == 1 and "receiving again" in again[0], again


def test_clock_is_set_from_the_system_clock_before_any_fix(tmp_path: Path) -> None:
    source = SerialNmeaSource(str(tmp_path / "absent"), 9600, backoff_initial_s=0.05)
    thread = GpsThread(source, FixHistory())
    try:
        # No receiver at all, but this machine's clock is plausible (NTP, an RTC): known.
        assert thread.status().clock_set
    finally:
        source.close()
    unset = GpsThread(
        SerialNmeaSource(str(tmp_path / "absent"), 9600),
        FixHistory(),
        wall_clock=lambda: datetime(1970, 1, 1, 0, 5, tzinfo=UTC),  # a Pi without an RTC
    )
    assert not unset.status().clock_set
