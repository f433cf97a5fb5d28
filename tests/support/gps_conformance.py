"""How well `roadpatrol gps dump --nmea-file` agrees with gpsd's TPV reports (*.log.chk).

An **epoch** is one receiver time. gpsd's epochs for a log are its timed TPV reports, the last
report of each time (``chk_epochs``); ours are the timed objects `gps dump` prints. An epoch
**matches** when both sides have it and they agree on:

- the time, to the millisecond (gpsd's ISO form, the key of both sides);
- the mode (0..3);
- latitude and longitude within 1e-6 degrees, or both absent;
- speed within 1e-3 m/s and track within 1e-3 degrees, where both sides have them.

The **match figure** of a set of logs is matched epochs / epochs either side has: an epoch
gpsd reports that we miss and one we invent that gpsd does not report both count against it.

Run ``python tests/support/gps_conformance.py`` to print the figure for the shared logs and the
fixtures in tests/data/gpsd_logs.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# Run as a script: tests/ for `support`, the repository for the real `edge` (tests/edge,
# a folder of tests, must not stand in for it).
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from edge.cli import main  # noqa: E402

from support.gps import GPSD_LOGS, chk_epochs  # noqa: E402

FIXTURE_LOGS = TESTS / "data" / "gpsd_logs"
POSITION_TOLERANCE_DEG = 1e-6
SPEED_TOLERANCE_MPS = 1e-3
TRACK_TOLERANCE_DEG = 1e-3


@dataclass(frozen=True)
class LogAgreement:
    log: str
    matched: int
    gpsd_epochs: int
    our_epochs: int
    union: int
    differences: dict[str, str]  # receiver time -> why that epoch does not match

    @property
    def figure(self) -> float:
        return 1.0 if self.union == 0 else self.matched / self.union


_GPSD_322 = '"class":"VERSION","release":"3.22"'
_DATE_COMMENT = re.compile(rb"^#\s*Date:.*$", re.MULTILINE)


def made_by_gpsd_322(log: Path) -> bool:
    return _GPSD_322 in Path(f"{log}.chk").read_text(encoding="utf-8", errors="replace")[:400]


def as_gpsd_322_reads_it(log: Path, scratch: Path) -> Path:
    """``log`` without its ``# Date: YYYY-MM-DD`` comment, when its .chk came from gpsd 3.22.

    The fixtures' .chk files were made by the gpsd installed here (3.22; its VERSION report
    is their first line). gpsd 3.22 does not read a log's ``# Date:`` comment (it then moves
    dates before 2017 forward 1024 weeks, and has no date at all for a receiver that sends
    none); gpsd's committed .chk files, like the shared logs', were made by a later gpsd that
    does, as our reader does. Fed the log without the comment, our reader knows what gpsd 3.22
    knew. Nothing else in the log is changed.
    """
    if not made_by_gpsd_322(log):
        return log
    copy = scratch / log.name
    copy.write_bytes(_DATE_COMMENT.sub(b"# (date comment removed)", log.read_bytes()))
    return copy


def dump_records(log: Path) -> list[dict[str, object]]:
    """What `roadpatrol gps dump --nmea-file LOG` prints, parsed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["gps", "dump", "--nmea-file", str(log)])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    if code != 0 and records:
        raise AssertionError(f"gps dump {log.name} exited {code}: {err.getvalue().strip()}")
    return records


def _close(a: object, b: object, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= tolerance  # type: ignore[arg-type]


def epoch_difference(ours: dict[str, object], tpv: dict[str, object]) -> str | None:
    """Why our epoch does not match gpsd's report of it; None when it matches."""
    if ours["mode"] != tpv.get("mode"):
        return f"mode {ours['mode']} != gpsd {tpv.get('mode')}"
    for ours_key, gpsd_key in (("lat", "lat"), ("lon", "lon")):
        if not _close(ours[ours_key], tpv.get(gpsd_key), POSITION_TOLERANCE_DEG):
            return f"{ours_key} {ours[ours_key]} != gpsd {tpv.get(gpsd_key)}"
    for ours_key, gpsd_key, tolerance in (
        ("speed_mps", "speed", SPEED_TOLERANCE_MPS),
        ("track_deg", "track", TRACK_TOLERANCE_DEG),
    ):
        mine, theirs = ours[ours_key], tpv.get(gpsd_key)
        if mine is not None and theirs is not None and not _close(mine, theirs, tolerance):
            return f"{ours_key} {mine} != gpsd {theirs}"
    return None


def agreement(log: Path) -> LogAgreement:
    theirs = chk_epochs(log)
    with tempfile.TemporaryDirectory() as scratch:
        records = dump_records(as_gpsd_322_reads_it(log, Path(scratch)))
    ours = {str(r["time_utc"]): r for r in records if r["time_utc"] is not None}
    differences: dict[str, str] = {}
    matched = 0
    for stamp in sorted(set(theirs) | set(ours)):
        if stamp not in ours:
            differences[stamp] = "missing (gpsd reports it)"
        elif stamp not in theirs:
            differences[stamp] = "not an epoch of gpsd's"
        elif (why := epoch_difference(ours[stamp], theirs[stamp])) is not None:
            differences[stamp] = why
        else:
            matched += 1
    return LogAgreement(
        log=log.name,
        matched=matched,
        gpsd_epochs=len(theirs),
        our_epochs=len(ours),
        union=len(set(theirs) | set(ours)),
        differences=differences,
    )


def fixture_logs() -> list[Path]:
    return sorted(FIXTURE_LOGS.glob("*.log"))


def all_conformance_logs() -> list[Path]:
    return sorted(GPSD_LOGS.glob("*.log")) + fixture_logs()


def overall(results: list[LogAgreement]) -> float:
    union = sum(r.union for r in results)
    return 1.0 if union == 0 else sum(r.matched for r in results) / union


if __name__ == "__main__":
    rows = [agreement(log) for log in all_conformance_logs()]
    for row in rows:
        print(
            f"{row.log:28} {row.matched:4}/{row.union:<4} "
            f"(gpsd {row.gpsd_epochs}, ours {row.our_epochs})  {row.figure:6.1%}"
        )
        for stamp, why in list(row.differences.items())[:3]:
            print(f"    {stamp}: {why}")
    matched, union = sum(r.matched for r in rows), sum(r.union for r in rows)
    print(f"overall {matched}/{union} epochs match: {overall(rows):.2%}")
