"""GpsdSource against a real gpsd, fed by gpsfake from the shared logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _gps_fixtures import GPSD_LOGS, chk_epochs, free_port, gpsfake, start_gpsfake, wait_until

from edge.cli import main
from edge.gps.cli import format_time
from edge.gps.gpsd_source import GpsdSource
from edge.types import Fix

# Both logs are from after 2017, so every gpsd version dates them as their .chk files do.
RTK_LOG = GPSD_LOGS / "nmea-rtk.log"
TESEO_LOG = GPSD_LOGS / "st-teseo-liv3f.log"


def collect(
    source: GpsdSource, *, until_quiet_s: float, limit_s: float, count: int = 10**6
) -> list[Fix]:
    """Fixes until ``count``, none for ``until_quiet_s`` (after the first), or ``limit_s``."""
    fixes: list[Fix] = []
    deadline = time.monotonic() + limit_s
    last = time.monotonic()
    while time.monotonic() < deadline and len(fixes) < count:
        fix = source.read(0.2)
        if fix is not None:
            fixes.append(fix)
            last = time.monotonic()
        elif fixes and time.monotonic() - last > until_quiet_s:
            break
    return fixes


def assert_matches_chk(fixes: list[Fix], log: Path) -> None:
    """Every timed fix is one of gpsd's epochs for ``log``, at its position. (Before the
    receiver's date is known gpsd reports fixes without a time; they have no epoch yet.)"""
    reports = chk_epochs(log)
    first_timed = next(i for i, fix in enumerate(fixes) if fix.time_utc is not None)
    timed = fixes[first_timed:]
    assert all(fix.time_utc is not None for fix in timed)
    for fix in timed:
        stamp = format_time(fix.time_utc)
        assert stamp in reports, f"{stamp} is not an epoch of {log.name}"
        assert fix.lat_deg == pytest.approx(reports[stamp]["lat"], abs=1e-6)
        assert fix.lon_deg == pytest.approx(reports[stamp]["lon"], abs=1e-6)


def test_streams_every_epoch_gpsd_reports_and_never_hangs(tmp_path: Path) -> None:
    with gpsfake(RTK_LOG, 0.02, tmp_path / "gpsfake.out") as fake:
        source = GpsdSource("127.0.0.1", fake.port, silence_reconnect_s=0.8, backoff_initial_s=0.1)
        try:
            fixes = collect(source, until_quiet_s=1.5, limit_s=40)
            # The log is over and gpsd is silent: reads still return on time.
            started = time.monotonic()
            assert source.read(0.3) is None
            assert time.monotonic() - started < 1.0
            wait_until(lambda: "no reports" in (source.stats().error or ""), 5, "silence")
        finally:
            source.close()
    assert_matches_chk(fixes, RTK_LOG)
    epochs = {fix.time_utc for fix in fixes}
    # gpsd spends the first sentences recognising the device; the rest must all arrive.
    assert len(epochs) >= len(chk_epochs(RTK_LOG)) // 2


def test_gpsd_going_away_and_coming_back_is_survived(tmp_path: Path) -> None:
    port = free_port()
    first = start_gpsfake(RTK_LOG, port, 0.05, tmp_path / "first.out")
    source = GpsdSource(
        "127.0.0.1", port, silence_reconnect_s=2.0, backoff_initial_s=0.1, backoff_max_s=0.3
    )
    second = None
    try:
        before = collect(source, until_quiet_s=30, limit_s=20, count=5)
        first.stop()
        wait_until(lambda: source.read(0.1) is None and not source.stats().connected, 10, "loss")
        assert "gpsd" in (source.stats().error or "")

        second = start_gpsfake(TESEO_LOG, port, 0.01, tmp_path / "second.out")
        after = collect(source, until_quiet_s=1.5, limit_s=40)
        stats = source.stats()
    finally:
        source.close()
        first.stop()
        if second is not None:
            second.stop()
    assert len(before) == 5
    assert_matches_chk(before, RTK_LOG)
    assert_matches_chk(after, TESEO_LOG)
    assert len({f.time_utc for f in after}) >= 5
    # This receiver prints GSA, so gpsd's SKY reports carry HDOP and satellites used.
    assert any(f.hdop is not None and f.sats_used for f in after)
    assert stats.reconnects >= 1


def test_dump_cli_prints_one_object_per_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with gpsfake(RTK_LOG, 0.02, tmp_path / "gpsfake.out") as fake:
        time.sleep(0.5)  # let gpsfake open its port; the CLI retries anyway
        address = f"127.0.0.1:{fake.port}"
        code = main(["gps", "dump", "--gpsd", address, "--count", "6", "--timeout", "30"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 6
    # gpsd's very first report may come before it has the date (no time yet).
    timed = [r for r in records if r["time_utc"] is not None]
    assert len(timed) >= 5 and records[-5:] == timed[-5:]
    assert len({r["time_utc"] for r in timed}) == len(timed)  # one object per epoch
    reports = chk_epochs(RTK_LOG)
    for record in timed:
        report = reports[record["time_utc"]]
        assert record["lat"] == pytest.approx(report["lat"], abs=1e-6)
        assert record["lon"] == pytest.approx(report["lon"], abs=1e-6)
    # gpsd may miss the first epoch's GGA while it recognises the device (then it says 2D).
    assert [r["mode"] for r in timed[1:]] == [reports[r["time_utc"]]["mode"] for r in timed[1:]]
