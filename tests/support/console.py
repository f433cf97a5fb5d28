"""A live office for the console tests: a real mosquitto, a vehicle's outbox drained by the real
publisher into the office receiver, staff accounts made with `roadpatrol office user add`, and
`roadpatrol office serve` running as its own process on a free port.

``LiveOffice.deliver`` sends more findings (and track points) through the same broker while the
console runs: the re-sighting and live-update tests use it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.types import Finding, Fix, FixMode, FixQuality
from sync.drain import drain

from support.broker import Broker, free_port, mqtt_cfg, wait_until
from support.collect import Office
from support.sync_data import make_finding, open_outbox, road_jpegs

EXE = str(Path(sys.executable).with_name("roadpatrol"))  # the installed command, as staff run it
VEHICLE = "chiba-07"
UNREACHABLE_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # the discard port: nothing listens
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
METRE_LAT = 1 / 111_195
LAT0, LON0 = 35.6074, 140.1065
PASSWORDS = {"admin": "admin-pass-1", "rev": "review-pass-1", "view": "viewer-pass-1"}
ROLES = {"admin": "admin", "rev": "reviewer", "view": "viewer"}
SPECS = [  # grade, type, metres north, minutes after T0
    (3, "D40", 0.0, 0), (2, "D20", 100.0, 2), (1, "D00", 200.0, 3), (3, "D40", 300.0, 4),
    (1, "D10", 400.0, 5), (2, "D20", 500.0, 6),
]  # fmt: skip

# Two 600 m roads: the one the patrol drove (north from the first finding) and a parallel one
# 1 km east that nobody drove, so half the road length is covered.
ROADS = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": name}, "geometry": {"type": "LineString",
     "coordinates": [[LON0 + east_deg, LAT0], [LON0 + east_deg, LAT0 + 600 * METRE_LAT]]}}
    for name, east_deg in (("driven", 0.0), ("not driven", 0.011))
]}  # fmt: skip


def roadpatrol(*args: str, stdin: str = "", timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, *args],
        input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def findings_at(specs: list[tuple[int, str, float, int]], seq0: int = 0) -> list[Finding]:
    return [
        make_finding(
            VEHICLE, seq0 + i, grade=grade, type_code=code, lat_deg=LAT0 + north_m * METRE_LAT,
            lon_deg=LON0, captured_at_utc=T0 + timedelta(minutes=minutes),
        )
        for i, (grade, code, north_m, minutes) in enumerate(specs)
    ]  # fmt: skip


def drive_fixes(start: datetime, metres: float, speed_mps: float = 10.0) -> list[Fix]:
    """1 Hz fixes driving north from the first finding."""
    n = int(metres / speed_mps) + 1
    return [
        Fix(mono_ns=i * 1_000_000_000, time_utc=start + timedelta(seconds=i),
            lat_deg=LAT0 + i * speed_mps * METRE_LAT, lon_deg=LON0, mode=FixMode.FIX_3D,
            quality=FixQuality.GPS, speed_mps=speed_mps, track_deg=0.0, hdop=0.9)
        for i in range(n)
    ]  # fmt: skip


@dataclass
class LiveOffice:
    workdir: Path
    broker: Broker
    office: Office
    url: str
    findings: list[Finding]
    db: str  # the office's --db: the SQLite file or a PostgreSQL URL
    process: subprocess.Popen[bytes] | None = None
    _outboxes: int = field(default=0)

    def deliver(self, findings: list[Finding], fixes: tuple[Fix, ...] = ()) -> None:
        """Through a fresh outbox, the real publisher and the broker into the receiver."""
        self._outboxes += 1
        data_dir = self.workdir / f"outbox-{self._outboxes}"
        jpegs = road_jpegs(len(findings))
        with open_outbox(data_dir) as outbox:
            for f, jpeg in zip(findings, jpegs, strict=True):
                assert outbox.add(f, jpeg)
            for fix in fixes:
                outbox.add_track_point(fix)
        with open_outbox(data_dir) as outbox:
            result = drain(mqtt_cfg(self.broker.port), outbox, VEHICLE, timeout_s=60)
        assert result.remaining == 0, result
        want = {f.id for f in findings}
        store = self.office.store

        def stored() -> bool:
            with_images = {r[0] for r in store.query("SELECT finding_id FROM images")}
            return want <= store.finding_ids() and want <= with_images

        assert wait_until(stored, 30), "the receiver did not store the delivered findings"


def login(client: httpx.Client, name: str, password: str | None = None) -> httpx.Response:
    """Log in through the form as a browser does (GET for the token, POST the form)."""
    page = client.get("/login")
    token = csrf_from(page.text)
    return client.post("/login", data={"username": name, "password": password or PASSWORDS[name],
                                       "csrf_token": token, "next": "/"})  # fmt: skip


def csrf_from(html: str) -> str:
    marker = 'name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _start_server(live: LiveOffice, config: Path, roads: Path) -> subprocess.Popen[bytes]:
    port = int(live.url.rsplit(":", 1)[1])
    log = open(live.workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [EXE, "office", "serve", "--db", str(live.db),
         "--images", str(live.workdir / "office" / "images"), "--port", str(port),
         "--config", str(config), "--roads", str(roads)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, (live.workdir / "serve.log").read_text()
        try:
            return httpx.get(f"{live.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(healthy, 60, interval_s=0.2), "the console never answered /healthz"
    return proc


def live_office(workdir: Path, db: str | None = None) -> Iterator[LiveOffice]:
    """The live office on ``db`` (a PostgreSQL URL; default SQLite in ``workdir``)."""
    db = db or str(workdir / "office" / "office.sqlite3")
    broker = Broker(workdir / "broker")
    broker.start()
    office = Office(workdir / "office", mqtt_cfg(broker.port), client_id="office-console", db=db)
    office.__enter__()
    findings = findings_at(SPECS)
    live = LiveOffice(workdir, broker, office, f"http://127.0.0.1:{free_port()}", findings, db)
    try:
        live.deliver(findings, tuple(drive_fixes(T0, 600.0)))
        for name, role in ROLES.items():
            done = roadpatrol("office", "user", "add", name, "--role", role, "--db", str(live.db),
                              stdin=PASSWORDS[name] + "\n")  # fmt: skip
            assert done.returncode == 0, done.stderr
        roads = workdir / "roads.geojson"
        roads.write_text(json.dumps(ROADS))
        config = workdir / "console.toml"
        # A tile server that cannot be reached (nothing outside is, here): the map must work on
        # its plain background, with the GSI attribution of the default settings.
        config.write_text(f'[map]\ntiles_url = "{UNREACHABLE_TILES}"\npoll_interval_s = 0.5\n'
                          '[security]\nlogin_lockout_s = 600.0\n')  # fmt: skip
        live.process = _start_server(live, config, roads)
        yield live
    finally:
        if live.process is not None:
            live.process.terminate()
            live.process.wait(20)
        office.__exit__()
        broker.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOffice]:
    """The live office on SQLite (the browser tests: slow, so on one store)."""
    yield from live_office(tmp_path_factory.mktemp("console"))


@pytest.fixture
def client(live: LiveOffice) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=20) as c:
        yield c

