"""Shared helpers for the GPS tests: shared data, gpsd's .chk files, pseudo-terminals, gpsfake,
and a synthetic ground-truth drive for geotag accuracy."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.gps.geo import destination, distance_m
from edge.gps.history import FixHistory
from edge.types import Fix, FixMode, FixQuality

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GPSD_LOGS = SHARED_DATA / "gpsd_nmea_logs"
DEMO_TRACK = REPO / "edge" / "demo" / "chiba_drive.nmea"
NS = 1_000_000_000


def gpsd_logs() -> list[Path]:
    logs = sorted(GPSD_LOGS.glob("*.log"))
    if not logs:
        pytest.fail(f"no NMEA logs in {GPSD_LOGS}: the shared data must be beside the repo")
    return logs


def chk_epochs(log: Path) -> dict[str, dict[str, object]]:
    """gpsd's TPV reports for ``log``: the last report of each receiver time, in order."""
    epochs: dict[str, dict[str, object]] = {}
    with open(f"{log}.chk", encoding="utf-8", errors="replace") as chk:
        for line in chk:
            if not line.startswith("{"):
                continue
            report = json.loads(line)
            if report.get("class") == "TPV" and "time" in report:
                epochs.pop(report["time"], None)  # keep insertion order of the final report
                epochs[report["time"]] = report
    return epochs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


# ---- pseudo-terminals as serial ports ----


class Pty:
    """A pseudo-terminal pair: the test writes to ``master``, the code opens ``path``."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        # Raw from the start, so bytes written before pyserial configures the port are not
        # echoed or interpreted (^C, XON/XOFF) by the line discipline.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._writers: list[threading.Thread] = []

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def write_in_background(self, data: bytes, pause_s: float = 0.0, chunk: int = 0) -> None:
        """Write from a thread (a pty buffer is small; a big write blocks until read),
        in ``chunk``-byte pieces ``pause_s`` apart when ``chunk`` is given."""
        size = chunk or max(1, len(data))
        self.write_pieces_in_background(
            [data[i : i + size] for i in range(0, len(data), size)], pause_s
        )

    def write_pieces_in_background(self, pieces: list[bytes], pause_s: float) -> None:
        def run() -> None:
            try:
                for piece in pieces:
                    os.write(self.master, piece)
                    if pause_s:
                        time.sleep(pause_s)
            except OSError:
                pass  # the test closed the pty: the device is gone, as intended

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._writers.append(thread)

    def unplug(self) -> None:
        """Close both ends: readers of the slave get EIO, like a pulled USB adapter."""
        for fd in (self.master, self._slave):
            with suppress(OSError):
                os.close(fd)
        self.master = self._slave = -1

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()


@contextmanager
def pty() -> Iterator[Pty]:
    p = Pty()
    try:
        yield p
    finally:
        p.close()


def epoch_bursts(track: Path = DEMO_TRACK) -> list[bytes]:
    """The sentences of ``track`` grouped per receiver second (comment lines dropped)."""
    bursts: list[bytes] = []
    for line in track.read_bytes().splitlines(keepends=True):
        if not line.startswith(b"$"):
            continue
        if line[3:6] == b"RMC":
            bursts.append(b"")
        bursts[-1] += line
    return bursts


# ---- gpsd via gpsfake ----


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install gpsd gpsd-clients)")
    return path


@dataclass
class GpsFake:
    port: int
    process: subprocess.Popen[bytes]

    def pause_feed(self) -> None:
        """Stop feeding the log; gpsd (a child, not stopped) stays up and reports nothing."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # a paused feed must see SIGTERM
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def start_gpsfake(log: Path, port: int, cycle_s: float, out: Path, *, once: bool) -> GpsFake:
    """``gpsfake [-1] -P PORT -c CYCLE LOG``: a real gpsd on ``port`` fed from ``log``.

    gpsfake feeds the log from its start, whether a client has subscribed or not, and gpsd
    drops what came before the first subscription: a client that connects late (a busy
    machine) misses the beginning, and with ``once`` the whole log. Tests that need every
    epoch therefore loop the log (``once=False``) and wait for a whole pass.
    """
    gpsfake = require_binary("gpsfake")
    require_binary("gpsd")
    env = dict(os.environ, PATH=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    once_flag = ["-1"] if once else []
    with open(out, "wb") as sink:
        process = subprocess.Popen(
            [gpsfake, "-q", *once_flag, "-P", str(port), "-c", str(cycle_s), str(log)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() ends gpsd with it
        )
    return GpsFake(port, process)


@contextmanager
def gpsfake(
    log: Path, cycle_s: float, out: Path, *, once: bool, port: int | None = None
) -> Iterator[GpsFake]:
    fake = start_gpsfake(log, port or free_port(), cycle_s, out, once=once)
    try:
        yield fake
    finally:
        fake.stop()


# ---- synthetic ground truth for geotag accuracy ----


@dataclass(frozen=True)
class TruthPoint:
    t_s: float
    lat_deg: float
    lon_deg: float
    heading_deg: float


def curvy_drive(speed_mps: float = 60 / 3.6, hz: int = 10) -> list[TruthPoint]:
    """A drive at constant speed through straights, bends and an S-curve (radii 80-150 m)."""
    # (seconds, signed curve radius in metres; 0 = straight; negative = left)
    legs = ((8, 0), (9, 120), (5, 0), (10, -80), (4, 0), (6, 100), (6, -100), (7, 0), (12, 150))
    dt = 1.0 / hz
    lat, lon, heading = 35.6073, 140.1063, 40.0
    points: list[TruthPoint] = []
    t = 0.0
    for seconds, radius in legs:
        rate = 0.0 if radius == 0 else math.degrees(speed_mps / radius)
        for _ in range(seconds * hz):
            points.append(TruthPoint(t, lat, lon, heading))
            lat, lon = destination(lat, lon, heading + rate * dt / 2, speed_mps * dt)
            heading = (heading + rate * dt) % 360
            t = round(t + dt, 9)
    points.append(TruthPoint(t, lat, lon, heading))
    return points


def decimated_fixes(
    truth: list[TruthPoint], speed_mps: float, every: int = 10, seed: int = 7
) -> list[Fix]:
    """One fix per ``every`` truth points, as a receiver reports it: exact position, speed and
    course with small noise (0.1 m/s, 1°), arrival stamp jittered by 5 ms."""
    rng = random.Random(seed)
    return [
        Fix(
            mono_ns=round((p.t_s + rng.gauss(0, 0.005)) * NS),
            time_utc=None,
            lat_deg=p.lat_deg,
            lon_deg=p.lon_deg,
            mode=FixMode.FIX_3D,
            quality=FixQuality.GPS,
            speed_mps=speed_mps + rng.gauss(0, 0.1),
            track_deg=(p.heading_deg + rng.gauss(0, 1.0)) % 360,
            hdop=0.9,
            sats_used=9,
        )
        for p in truth[::every]
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class GeotagErrors:
    interpolated_m: list[float]
    nearest_fix_m: list[float]


def geotag_errors(
    truth: list[TruthPoint], fixes: list[Fix], frame_offset_s: float = 0.037
) -> GeotagErrors:
    """Errors in metres of frames taken at every truth point (shifted by an offset so frames
    never coincide with fixes), geotagged by FixHistory and by the nearest fix."""
    history = FixHistory(capacity=len(fixes) + 10)
    for fix in fixes:
        history.add(fix)
    first, last = fixes[0].mono_ns, fixes[-1].mono_ns
    interpolated: list[float] = []
    nearest: list[float] = []
    for a, b in itertools.pairwise(truth):
        # truth at the frame time, on the straight piece between two 10 Hz points (≤ 2 mm off)
        share = frame_offset_s / (b.t_s - a.t_s)
        lat = a.lat_deg + (b.lat_deg - a.lat_deg) * share
        lon = a.lon_deg + (b.lon_deg - a.lon_deg) * share
        t_ns = round((a.t_s + frame_offset_s) * NS)
        if not first < t_ns < last:
            continue
        position = history.position_at(t_ns)
        assert position is not None, f"no position inside the fixes at {t_ns / NS:.2f} s"
        interpolated.append(distance_m(lat, lon, position.lat_deg, position.lon_deg))
        near = min(fixes, key=lambda f: abs(f.mono_ns - t_ns))
        assert near.lat_deg is not None and near.lon_deg is not None
        nearest.append(distance_m(lat, lon, near.lat_deg, near.lon_deg))
    return GeotagErrors(interpolated, nearest)
