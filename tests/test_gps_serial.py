"""SerialNmeaSource on a real pseudo-terminal: pacing, garbage on the line, unplug and replug."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from _gps_fixtures import DEMO_TRACK, Pty, epoch_bursts, pty, wait_until
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.gps.epoch import NmeaStreamDecoder
from edge.gps.sources import SerialNmeaSource
from edge.types import Fix


def reference_fixes(data: bytes) -> list[Fix]:
    decoder = NmeaStreamDecoder()
    return decoder.feed(data, 0) + decoder.finish(0)


def opened(source: SerialNmeaSource) -> SerialNmeaSource:
    """Let the source open its port first: opening a serial port discards what is waiting."""
    wait_until(lambda: source.read(0.05) is None and source.stats().connected, 5, "port open")
    return source


def read_fixes(source: SerialNmeaSource, count: int, timeout_s: float) -> list[Fix]:
    fixes: list[Fix] = []
    deadline = time.monotonic() + timeout_s
    while len(fixes) < count and time.monotonic() < deadline:
        fix = source.read(0.2)
        if fix is not None:
            fixes.append(fix)
    return fixes


def test_reads_a_paced_receiver_and_stamps_each_epoch_on_arrival() -> None:
    bursts = epoch_bursts()[:12]
    with pty() as port:
        source = opened(SerialNmeaSource(port.path, 9600, idle_flush_s=0.05))
        try:
            start = time.monotonic_ns()
            port.write_pieces_in_background(bursts, pause_s=0.05)  # a 20 Hz receiver
            fixes = read_fixes(source, len(bursts), timeout_s=5)
        finally:
            source.close()
    expected = reference_fixes(b"".join(bursts))
    assert [(f.time_utc, f.lat_deg, f.lon_deg) for f in fixes] == [
        (f.time_utc, f.lat_deg, f.lon_deg) for f in expected
    ]
    stamps = [f.mono_ns for f in fixes]
    assert stamps == sorted(stamps) and stamps[0] >= start
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
    # Stamped when each burst arrived (50 ms apart), not when the next burst closed it.
    assert 30 < sorted(gaps_ms)[len(gaps_ms) // 2] < 120, gaps_ms


GOOD = epoch_bursts()[:6]


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
            fixes = read_fixes(source, len(expected), timeout_s=5)
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
        got = read_fixes(source, 5, timeout_s=5)
        assert len(got) == 5 and source.stats().connected

        first.unplug()
        link.unlink()
        wait_until(lambda: source.read(0.1) is None and not source.stats().connected, 5, "loss")
        assert source.stats().error

        os.symlink(second.path, link)
        opened(source)
        second.write_in_background(b"".join(bursts[5:10]), pause_s=0.05, chunk=200)
        got += read_fixes(source, 5, timeout_s=5)
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
            assert len(read_fixes(source, 2, timeout_s=5)) == 2
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
            fixes = read_fixes(source, len(expected), timeout_s=10)
        finally:
            source.close()
    assert len(fixes) == len(expected) == 75
    assert [(f.lat_deg, f.lon_deg, f.speed_mps) for f in fixes] == [
        (f.lat_deg, f.lon_deg, f.speed_mps) for f in expected
    ]
