"""`roadpatrol gps dump`: output shape, --count, a serial receiver, and CLI misuse."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge.cli import main

from support.gps import DEMO_TRACK, REPO, epoch_bursts, pty, wait_until

KEYS = {"time_utc", "lat", "lon", "mode", "speed_mps", "track_deg", "hdop", "sats_used"}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_count_limits_the_epochs_and_objects_have_the_stable_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, records, err = run(
        ["gps", "dump", "--nmea-file", str(DEMO_TRACK), "--count", "4"], capsys
    )
    assert code == 0 and len(records) == 4
    assert all(set(r) == KEYS for r in records)
    assert records[0]["time_utc"] == "2024-05-14T01:00:00.000Z"
    assert records[3]["time_utc"] == "2024-05-14T01:00:03.000Z"
    assert records[0]["mode"] == 3 and records[0]["sats_used"] == 9 and records[0]["hdop"] == 0.9
    assert "4 epochs" in err


def test_serial_receiver_on_a_pty(capsys: pytest.CaptureFixture[str]) -> None:
    bursts = epoch_bursts()
    with pty() as port:
        result: dict[str, int] = {}
        thread = threading.Thread(
            target=lambda: result.update(
                code=main(
                    [
                        "gps",
                        "dump",
                        "--serial",
                        port.path,
                        "--baud",
                        "4800",
                        "--count",
                        "3",
                        "--timeout",
                        "60",
                    ]
                )
            )
        )
        thread.start()
        wait_until(lambda: not thread.is_alive() or _port_in_use(port.path), 30, "port open")
        # pyserial empties the input right after the device appears open, so the first burst
        # may be swept away; a receiver repeats every second, and so does this one.
        port.write_pieces_in_background(bursts[:12], pause_s=0.05)
        thread.join(90)
    assert result.get("code") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    times = [r["time_utc"] for r in records]
    written = [f"2024-05-14T01:00:{second:02d}.000Z" for second in range(12)]
    assert len(times) == 3 and times[0] in written[:9], times
    first = written.index(times[0])
    assert times == written[first : first + 3], "three consecutive epochs, one fix each"


def _port_in_use(path: str) -> bool:
    # fuser-free check: the process has the device open when /proc/self/fd links to it.
    fd_dir = Path("/proc/self/fd")
    opened = 0
    for fd in fd_dir.iterdir():
        try:
            if str(fd.readlink()) == path:
                opened += 1
        except OSError:
            continue
    return opened >= 2  # the test's own slave end plus pyserial's


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--nmea-file", "/nonexistent/drive.nmea"], "/nonexistent/drive.nmea"),
        (["--gpsd", "localhost"], "--gpsd"),
        (["--gpsd", "localhost:http"], "--gpsd"),
        (["--serial", "/dev/ttyUSB9", "--baud", "300"], "--baud"),
        (["--nmea-file", str(DEMO_TRACK), "--baud", "9600"], "--baud"),
        (["--nmea-file", str(DEMO_TRACK), "--count", "0"], "--count"),
        (["--serial", "/dev/ttyUSB9", "--timeout", "-1"], "--timeout"),
    ],
)
def test_misuse_exits_2_and_names_the_problem(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gps", "dump", *argv]) == 2
    assert expected in capsys.readouterr().err


def test_a_file_without_any_fix_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.nmea"
    junk.write_bytes(b"\x00\x01 not nmea at all\r\n$GPRMC,broken*00\r\n")
    code, records, err = run(["gps", "dump", "--nmea-file", str(junk)], capsys)
    assert code == 1 and records == []
    assert "2 bad" in err and "no fix epochs" in err


@pytest.mark.slow
def test_console_script_runs_as_a_process() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from edge.cli import main; sys.exit(main())",
            "gps",
            "dump",
            "--nmea-file",
            str(DEMO_TRACK),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 75
