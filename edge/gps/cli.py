"""``roadpatrol gps dump``: one JSON object per fix epoch, from any fix source.

The JSON shape is a stable interface (scripts and the gpsd comparison tests read it)::

    {"time_utc": "2014-12-31T03:07:19.000Z" | null, "lat": deg | null, "lon": deg | null,
     "mode": 0..3, "speed_mps": x | null, "track_deg": x | null, "hdop": x | null,
     "sats_used": n | null}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.errors import UsageError
from edge.gps import EndOfFixes, FixSource, FixSourceError, GpsConfig, open_fix_source
from edge.types import Fix


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gps = subparsers.add_parser(
        "gps", help="GPS receiver tools", description="Inspect the GPS receiver's fixes."
    )
    actions = gps.add_subparsers(dest="gps_command", metavar="ACTION", required=True)
    dump = actions.add_parser(
        "dump",
        help="print one JSON object per fix epoch",
        description="Print one JSON object per fix epoch (RMC, GGA, GSA and VTG of the same "
        "time merged) on standard output; a summary goes to standard error.",
    )
    source = dump.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--nmea-file", type=Path, metavar="FILE", help="NMEA log, read as fast as possible"
    )
    source.add_argument("--serial", metavar="DEV", help="serial device of an NMEA receiver")
    source.add_argument("--gpsd", metavar="HOST:PORT", help="a gpsd daemon")
    dump.add_argument("--baud", type=int, metavar="N", help="serial speed (default 9600)")
    dump.add_argument("--count", type=int, metavar="N", help="stop after N epochs")
    dump.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="give up when no epoch arrives for S seconds (serial and gpsd)",
    )
    dump.set_defaults(handler=dump_command)


def fix_record(fix: Fix) -> dict[str, Any]:
    """The stable JSON form of one fix epoch."""
    return {
        "time_utc": format_time(fix.time_utc),
        "lat": fix.lat_deg,
        "lon": fix.lon_deg,
        "mode": int(fix.mode),
        "speed_mps": fix.speed_mps,
        "track_deg": fix.track_deg,
        "hdop": fix.hdop,
        "sats_used": fix.sats_used,
    }


def format_time(stamp: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, as gpsd writes it."""
    if stamp is None:
        return None
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}Z"


def _config_from(args: argparse.Namespace) -> GpsConfig:
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.baud is not None and args.serial is None:
        raise UsageError("--baud only applies to --serial")
    try:
        if args.nmea_file is not None:
            return GpsConfig(source="nmea_file", nmea_file=args.nmea_file, replay_speed=0.0)
        if args.serial is not None:
            baud = 9600 if args.baud is None else args.baud
            return GpsConfig(source="serial", serial_port=args.serial, baud=baud)
        host, port = _host_port(args.gpsd)
        return GpsConfig(source="gpsd", gpsd_host=host, gpsd_port=port)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_FLAG_OF_FIELD.get(str(err['loc'][0]) if err['loc'] else '', 'value')}: {err['msg']}"
            for err in exc.errors()
        )
        raise UsageError(problems) from None


_FLAG_OF_FIELD = {
    "baud": "--baud",
    "serial_port": "--serial",
    "gpsd_host": "--gpsd",
    "gpsd_port": "--gpsd",
    "nmea_file": "--nmea-file",
}


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:2947
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--gpsd wants HOST:PORT, got {text!r}")
    return host, int(port)


def dump_command(args: argparse.Namespace) -> int:
    cfg = _config_from(args)
    try:
        source = open_fix_source(cfg)
    except FixSourceError as exc:
        raise UsageError(str(exc)) from None
    try:
        printed, gave_up = _dump(
            source, args.count, args.timeout, merge_updates=cfg.source == "gpsd"
        )
    except BrokenPipeError:
        return 0  # reader went away (| head): not an error
    finally:
        source.close()
    stats = source.stats()
    print(
        f"gps dump: {printed} epochs, {stats.bad_sentences} bad and "
        f"{stats.ignored_sentences} ignored sentences",
        file=sys.stderr,
    )
    if gave_up:
        print(f"gps dump: no fix epoch for {args.timeout} s ({stats.error})", file=sys.stderr)
        return 1
    if printed == 0:
        print(f"gps dump: no fix epochs from {source.name}", file=sys.stderr)
        return 1
    return 0


def _dump(
    source: FixSource, count: int | None, timeout_s: float | None, *, merge_updates: bool
) -> tuple[int, bool]:
    """Print epochs until ``count``, the end of a log, or ``timeout_s`` of silence.

    gpsd may report one epoch several times as its sentences arrive; with ``merge_updates``
    only the last report of each epoch is printed.
    """
    printed = 0
    held: Fix | None = None
    last_arrival = time.monotonic()
    gave_up = False
    while count is None or printed < count:
        try:
            fix = source.read(0.5)
        except EndOfFixes:
            break
        now = time.monotonic()
        if fix is None:
            if timeout_s is not None and now - last_arrival >= timeout_s:
                gave_up = True
                break
            continue
        last_arrival = now
        if merge_updates and (held is None or held.time_utc == fix.time_utc):
            held = fix
            continue
        _print(held if merge_updates and held is not None else fix)
        printed += 1
        held = fix if merge_updates else None
    if held is not None and (count is None or printed < count):
        _print(held)
        printed += 1
    return printed, gave_up and printed == 0


def _print(fix: Fix) -> None:
    sys.stdout.write(json.dumps(fix_record(fix)) + "\n")
    sys.stdout.flush()
