"""`roadpatrol gps dump --nmea-file` against gpsd's own reports (*.log.chk) for every shared log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main

from support.gps import chk_epochs, gpsd_logs


def dump(log: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(["gps", "dump", "--nmea-file", str(log)]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_every_shared_log_has_a_chk_file() -> None:
    logs = gpsd_logs()
    assert len(logs) >= 8
    for log in logs:
        assert Path(f"{log}.chk").is_file(), log


@pytest.mark.parametrize("log", gpsd_logs(), ids=lambda p: p.name)
def test_dump_agrees_with_gpsd(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = dump(log, capsys)
    theirs = chk_epochs(log)
    assert theirs, f"{log}.chk has no timed TPV reports"

    # Same epochs, in the same order, with the same receiver time. (gpsd, like us, reports
    # an epoch without a time before it has a date, a GLL before the first RMC; those have
    # no time to compare by.)
    ours = [e for e in ours if e["time_utc"] is not None]
    assert [e["time_utc"] for e in ours] == list(theirs)
    for epoch in ours:
        tpv = theirs[str(epoch["time_utc"])]
        where = f"{log.name} {epoch['time_utc']}"
        assert epoch["lat"] == pytest.approx(tpv["lat"], abs=1e-6), where
        assert epoch["lon"] == pytest.approx(tpv["lon"], abs=1e-6), where
        assert epoch["mode"] == tpv["mode"], where
        if "speed" in tpv:
            assert epoch["speed_mps"] == pytest.approx(tpv["speed"], abs=1e-3), where
        if "track" in tpv:
            assert epoch["track_deg"] == pytest.approx(tpv["track"], abs=1e-3), where
        else:
            assert epoch["track_deg"] is None, where


def test_week_rollover_and_declared_dates_resolved_like_gpsd(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """neo-m8n declares no date ('Date =' is not gpsd's 'Date:'), so its 2015 RMC dates are
    taken as a 1024-week rollover; bu353s4 declares 2014 and keeps it."""
    logs = {log.name: log for log in gpsd_logs()}
    neo = [e for e in dump(logs["neo-m8n.log"], capsys) if e["time_utc"] is not None]
    bu = dump(logs["bu353s4.log"], capsys)
    assert str(neo[0]["time_utc"]).startswith("2034-11-01T17:19:26")
    assert str(bu[0]["time_utc"]).startswith("2014-12-31T03:07:19")
