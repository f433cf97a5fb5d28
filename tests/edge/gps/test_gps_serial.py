"""SerialNmeaSource on a real pseudo-terminal: pacing, garbage on the line, unplug and replug."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.gps.epoch import NmeaStreamDecoder
from edge.gps.sources import SerialNmeaSource
from edge.types import Fix

from support.gps import DEMO_TRACK, Pty, epoch_bursts, pty, wait_until


def reference_fixes(data: bytes) -> list[Fix]:
    decoder = NmeaStreamDecoder()
    return decoder.feed(data, 0) + decoder.finish(0)


def opened(source: SerialNmeaSource) -> SerialNmeaSource:
    """Let the source open its port first: opening a serial port discards what is waiting."""
    wait_until(lambda: source.read(0.05) is None and source.stats().connected, 30, "port open")
    return source


def read_fixes(source: SerialNmeaSource, count: int, timeout_s: float) -> list[Fix]:
    fixes: list[Fix] = []
    deadline = time.monotonic() + timeout_s
    while len(fixes) < count and time.monotonic() < deadline:
        fix = source.read(0.2)
        if fix is not None:
            fixes.append(fix)
    return fixes


@pytest.mark.slow
def test_reads_a_paced_receiver_and_stamps_each_epoch_on_arrival() -> None:
    """Each epoch is stamped when its burst arrived, not when the reader closed it.

    The receiver is played in lock step: a burst, then nothing until its fix is out, so the
    reader closes each epoch only after ``idle_s`` of quiet. A fix stamped on arrival is
    therefore at least ``idle_s`` older than the moment it is handed out; one stamped at the
    close would not be. No pause is timed: the order of events decides.
    """
    idle_s = 0.3
    bursts = epoch_bursts()[:6]
    written, received, fixes = [], [], []
    with pty() as port:
        source = opened(SerialNmeaSource(port.path, 9600, idle_flush_s=idle_s))
        try:
            for burst in bursts:
                written.append(time.monotonic_ns())
                port.write(burst)
                fixes += read_fixes(source, 1, timeout_s=30)
                received.append(time.monotonic_ns())
        finally:
            source.close()
    expected = reference_fixes(b"".join(bursts))
    assert [(f.time_utc, f.lat_deg, f.lon_deg) for f in fixes] == [
        (f.time_utc, f.lat_deg, f.lon_deg) for f in expected
    ]
    for fix, sent, out in zip(fixes, written, received, strict=True):
        assert sent <= fix.mono_ns <= out - int(idle_s * 1e9), (sent, fix.mono_ns, out)


GOOD = epoch_bursts()[:6]


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.one_of(st.binary(min_size=1, max_size=60), st.text(max_size=40).map(str.encode)),
        min_size=len(GOOD),
        max_size=len(GOOD),
    )
)
@example(garbage=[b"#", b"\x00", b"\x00", b"\x00", b"\x00", b"\x00"])  # once lost a fix
def test_garbage_on_the_line_is_counted_never_fatal(garbage: list[bytes]) -> None:
    # Garbage goes between sentences (after a line end), as line noise does.
    stream = b"".join(chunk + burst for burst, chunk in zip(GOOD, garbage, strict=True))
    expected = reference_fixes(b"".join(GOOD))
    with pty() as port:
        source = opened(SerialNmeaSource(port.path, 9600, idle_flush_s=0.05))
        try:
            port.write_in_background(stream, pause_s=0.001, chunk=97)
            fixes = read_fixes(source, len(expected), timeout_s=30)
            stats = source.stats()
        finally:
            source.close()
    assert [(f.time_utc, f.lat_deg, f.lon_deg, f.mode) for f in fixes] == [
        (f.time_utc, f.lat_deg, f.lon_deg, f.mode) for f in expected
    ]
    noisy_chunks = sum(1 for chunk in garbage if chunk.strip())
    assert stats.bad_sentences >= noisy_chunks
    assert stats.error is None and stats.connected


def test_device_unplugged_and_replugged_is_reopened(tmp_path: Path) -> None:
    link = tmp_path / "gps0"  # like a udev symlink that follows the device
    bursts = epoch_bursts()
    first, second = Pty(), Pty()
    try:
        os.symlink(first.path, link)
        source = opened(
            SerialNmeaSource(
                str(link), 9600, idle_flush_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2
            )
        )
        first.write_in_background(b"".join(bursts[:5]))
        got = read_fixes(source, 5, timeout_s=30)
        assert len(got) == 5 and source.stats().connected

        first.unplug()
        link.unlink()
        wait_until(lambda: source.read(0.1) is None and not source.stats().connected, 30, "loss")
        assert source.stats().error

        os.symlink(second.path, link)
        opened(source)
        second.write_in_background(b"".join(bursts[5:10]), pause_s=0.05, chunk=200)
        got += read_fixes(source, 5, timeout_s=30)
        stats = source.stats()
        source.close()
    finally:
        first.close()
        second.close()
    expected = reference_fixes(b"".join(bursts[:10]))
    assert [f.time_utc for f in got] == [f.time_utc for f in expected]
    assert stats.reconnects == 1 and stats.connected and stats.error is None


def test_missing_port_is_reported_and_retried_without_raising(tmp_path: Path) -> None:
    link = tmp_path / "gps-not-yet"
    source = SerialNmeaSource(str(link), 9600, backoff_initial_s=0.05, backoff_max_s=0.1)
    try:
        assert source.read(0.3) is None
        stats = source.stats()
        assert not stats.connected and str(link) in (stats.error or "")
        with pty() as port:
            os.symlink(port.path, link)
            opened(source)
            port.write_in_background(b"".join(epoch_bursts()[:3]))
            assert len(read_fixes(source, 2, timeout_s=30)) == 2
    finally:
        source.close()


def test_demo_track_over_the_wire_equals_the_file() -> None:
    data = DEMO_TRACK.read_bytes()
    payload = b"".join(line for line in data.splitlines(keepends=True) if line.startswith(b"$"))
    expected = reference_fixes(payload)
    with pty() as port:
        source = opened(SerialNmeaSource(port.path, 115200, idle_flush_s=0.05))
        try:
            port.write_in_background(payload, chunk=64)
            fixes = read_fixes(source, len(expected), timeout_s=30)
        finally:
            source.close()
    assert len(fixes) == len(expected) == 75
    assert [(f.lat_deg, f.lon_deg, f.speed_mps) for f in fixes] == [
        (f.lat_deg, f.lon_deg, f.speed_mps) for f in expected
    ]
