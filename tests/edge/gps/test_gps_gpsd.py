"""GpsdSource against a real gpsd, fed by gpsfake from the shared logs."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.cli import main
from edge.gps.cli import format_time
from edge.gps.gpsd_source import GpsdSource
from edge.types import Fix

from support.gps import GPSD_LOGS, chk_epochs, free_port, gpsfake, start_gpsfake, wait_until

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

# Both logs are from after 2017, so every gpsd version dates them as their .chk files do.
RTK_LOG = GPSD_LOGS / "nmea-rtk.log"
TESEO_LOG = GPSD_LOGS / "st-teseo-liv3f.log"


def collect(source: GpsdSource, done: Callable[[list[Fix]], bool], *, limit_s: float) -> list[Fix]:
    """Fixes until ``done(fixes)``; ``limit_s`` only bounds a test that has already failed."""
    fixes: list[Fix] = []
    deadline = time.monotonic() + limit_s
    while not done(fixes):
        assert time.monotonic() < deadline, f"{len(fixes)} fixes in {limit_s} s: {fixes[-3:]}"
        fix = source.read(0.2)
        if fix is not None:
            fixes.append(fix)
    return fixes


def drain(source: GpsdSource, limit_s: float = 60) -> list[Fix]:
    """The fixes already on their way, until a read finds none."""
    fixes: list[Fix] = []
    deadline = time.monotonic() + limit_s
    while (fix := source.read(0.3)) is not None:
        assert time.monotonic() < deadline, "the fixes never stopped after the feed did"
        fixes.append(fix)
    return fixes


def stamps(fixes: list[Fix]) -> set[str]:
    return {stamp for fix in fixes if (stamp := format_time(fix.time_utc)) is not None}


def loop_seam(log: Path) -> set[str]:
    """Times of day (HH:MM:SS) of the first and last epoch of ``log``.

    Where gpsfake loops a log, its last burst (cut short at the end of the file) runs on into
    the first of the next pass, and its first epoch is dated from the previous pass: gpsd
    reports both, which its .chk of a single pass does not have.
    """
    times = [
        fields[1][:6] if fields[0][3:] != "GLL" else fields[5][:6]
        for line in log.read_text(encoding="latin-1").splitlines()
        if line.startswith("$") and (fields := line.split(","))[0][3:] in ("RMC", "GGA", "GLL")
    ]
    seam = {times[0], times[-1]}
    return {f"{t[0:2]}:{t[2:4]}:{t[4:6]}" for t in seam}


def assert_matches_chk(fixes: list[Fix], log: Path, *, looped: bool) -> None:
    """Every timed fix is one of gpsd's epochs for ``log``, at its position. (Before the
    receiver's date is known gpsd reports fixes without a time; they have no epoch yet.)"""
    reports = chk_epochs(log)
    seam = loop_seam(log) if looped else set()
    timed = [fix for fix in fixes if fix.time_utc is not None]
    assert timed, f"no timed fix from {log.name}"
    for fix in timed:
        stamp = format_time(fix.time_utc)
        if f"{fix.time_utc:%H:%M:%S}" in seam:
            continue
        assert stamp in reports, f"{stamp} is not an epoch of {log.name}"
        assert fix.lat_deg == pytest.approx(reports[stamp]["lat"], abs=1e-6)
        assert fix.lon_deg == pytest.approx(reports[stamp]["lon"], abs=1e-6)


def wait_for_port(port: int) -> None:
    def accepting() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_until(accepting, 30, f"gpsd listening on port {port}")


def test_streams_every_epoch_gpsd_reports_and_never_hangs(tmp_path: Path) -> None:
    expected = set(chk_epochs(RTK_LOG))
    # The log loops: however late this client subscribes (a busy machine), a whole pass of
    # the log follows; the test waits for every epoch of it, not for a time.
    with gpsfake(RTK_LOG, 0.02, tmp_path / "gpsfake.out", once=False) as fake:
        source = GpsdSource("127.0.0.1", fake.port, silence_reconnect_s=0.8, backoff_initial_s=0.1)
        try:
            fixes = collect(source, lambda got: expected <= stamps(got), limit_s=180)
            fake.pause_feed()  # gpsd stays up and falls silent
            drained = drain(source)
            # gpsd is silent: a read returns at its timeout, it does not hang.
            started = time.monotonic()
            assert source.read(0.3) is None
            assert time.monotonic() - started < 3.0
            wait_until(
                lambda: source.read(0.1) is None and "no reports" in (source.stats().error or ""),
                30,
                "the source to call gpsd's silence what it is",
            )
        finally:
            source.close()
    assert_matches_chk(fixes + drained, RTK_LOG, looped=True)
    assert expected <= stamps(fixes)


def test_a_client_subscribing_after_a_whole_pass_still_gets_every_epoch(tmp_path: Path) -> None:
    """The CI failure: a client that subscribed after gpsfake had played the log got no fix."""
    expected = set(chk_epochs(RTK_LOG))
    last_epoch = list(chk_epochs(RTK_LOG))[-1]
    with gpsfake(RTK_LOG, 0.02, tmp_path / "gpsfake.out", once=False) as fake:
        early = GpsdSource("127.0.0.1", fake.port, backoff_initial_s=0.1)
        late = GpsdSource("127.0.0.1", fake.port, backoff_initial_s=0.1)
        try:
            # The early client watches the log go by to its last epoch: only then does the
            # late one subscribe, as late as the busy CI machine made the old test's client.
            collect(early, lambda got: last_epoch in stamps(got), limit_s=120)
            fixes = collect(late, lambda got: expected <= stamps(got), limit_s=120)
        finally:
            early.close()
            late.close()
    assert_matches_chk(fixes, RTK_LOG, looped=True)


def test_gpsd_going_away_and_coming_back_is_survived(tmp_path: Path) -> None:
    port = free_port()
    first = start_gpsfake(RTK_LOG, port, 0.05, tmp_path / "first.out", once=False)
    source = GpsdSource(
        "127.0.0.1", port, silence_reconnect_s=2.0, backoff_initial_s=0.1, backoff_max_s=0.3
    )
    second = None
    try:
        before = collect(source, lambda got: len(got) >= 5, limit_s=120)
        first.stop()
        wait_until(lambda: source.read(0.1) is None and not source.stats().connected, 30, "loss")
        assert "gpsd" in (source.stats().error or "")

        second = start_gpsfake(TESEO_LOG, port, 0.01, tmp_path / "second.out", once=False)

        def enough(got: list[Fix]) -> bool:
            # This receiver prints GSA, so gpsd's SKY reports carry HDOP and satellites used.
            with_sky = any(f.hdop is not None and f.sats_used for f in got)
            return len(stamps(got)) >= 5 and with_sky

        after = collect(source, enough, limit_s=120)
        stats = source.stats()
    finally:
        source.close()
        first.stop()
        if second is not None:
            second.stop()
    assert_matches_chk(before, RTK_LOG, looped=True)
    assert_matches_chk(after, TESEO_LOG, looped=True)
    assert stamps(after) & set(chk_epochs(TESEO_LOG))  # not only seam epochs
    assert stats.reconnects >= 1


def test_dump_cli_prints_one_object_per_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Looped, so the six epochs come however late the CLI subscribes.
    with gpsfake(RTK_LOG, 0.02, tmp_path / "gpsfake.out", once=False) as fake:
        wait_for_port(fake.port)
        address = f"127.0.0.1:{fake.port}"
        code = main(["gps", "dump", "--gpsd", address, "--count", "6", "--timeout", "60"])
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
