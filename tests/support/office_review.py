"""An office database filled over a real mosquitto from a real outbox, for the review tests.

Built once per test module (a broker, a receiver, a drain of real road images), then copied for
each test, which reviews and exports its own copy. ``office_pair`` adds a second vehicle that saw
one crack twice (``pair_findings``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.cli import main as roadpatrol
from edge.types import Damage, Finding
from sync.drain import drain
from sync.office.store_api import open_store

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office
from support.pg import PgCluster, clone_database, new_database
from support.sync_data import make_finding, open_outbox, road_jpegs

VEHICLE = "veh-rev"
VEHICLE_TWO = "veh-two"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
METRE_LAT = 1 / 111_195  # degrees of latitude per metre
NO_IMAGE = 5  # the index of the finding sent without an image

# The export's columns before reviews existed: a stable interface that must not move.
OLD_FINDING_COLUMNS = [
    "id", "vehicle_id", "boot_id", "seq", "captured_at_utc", "grade", "type_codes", "lat_deg",
    "lon_deg", "model_id", "origin", "sightings", "site_ids", "image_path", "received_at_utc",
]  # fmt: skip
OLD_SITE_COLUMNS = [
    "site_id", "type_code", "lat_deg", "lon_deg", "sightings", "max_grade", "first_seen_utc",
    "last_seen_utc", "vehicles", "last_finding_id", "image_path",
]  # fmt: skip
REVIEW_FIELDS = ["review_verdict", "reviewed_grade", "reviewed_types", "reviewed_by",
                 "reviewed_at_utc", "office_grade"]  # fmt: skip


def _findings() -> list[Finding]:
    """Eight findings: 0 and 1 are two sightings of one pothole (2 m apart), 4 shows a crack
    (stronger score) and a pothole (higher grade), 6 is a month old, 5 comes without an image."""
    specs = [  # grade, type, metres north of the first, minutes after T0
        (3, "D40", 0.0, 0), (3, "D40", 2.0, 1), (2, "D20", 100.0, 2), (1, "D00", 200.0, 3),
        (3, "D40", 300.0, 4), (1, "D10", 400.0, 5), (2, "D20", 500.0, -30 * 24 * 60),
        (1, "D00", 600.0, 7),
    ]  # fmt: skip
    out = []
    for i, (grade, code, north_m, minutes) in enumerate(specs):
        f = make_finding(
            VEHICLE, i, grade=grade, type_code=code, lat_deg=35.6 + north_m * METRE_LAT,
            lon_deg=140.1, captured_at_utc=T0 + timedelta(minutes=minutes),
        )  # fmt: skip
        if i == 4:
            f = dataclasses.replace(
                f,
                damages=(
                    Damage("D00", 0.9, (0.1, 0.1, 0.3, 0.3), 1),
                    Damage("D40", 0.6, (0.5, 0.5, 0.7, 0.7), 3),
                ),
            )
        out.append(f)
    return out


def pair_findings() -> list[Finding]:
    """A second vehicle's two sightings of one crack (D00, grade 1), 3 m apart and 200 m from
    any other finding: one D00 site with two sightings on arrival."""
    return [
        make_finding(
            VEHICLE_TWO, i, grade=1, type_code="D00", lat_deg=35.6 + north_m * METRE_LAT,
            lon_deg=140.1, captured_at_utc=T0 + timedelta(minutes=10 + i),
        )
        for i, north_m in enumerate((800.0, 803.0))
    ]  # fmt: skip


@dataclass(frozen=True)
class ReceivedOffice:
    office_dir: Path  # images/ (and office.sqlite3 on SQLite), as the receiver left them
    db: str  # the office database's --db: the SQLite file or a PostgreSQL URL
    outbox_backup: Path  # the vehicle's outbox before it was drained: a re-send of everything
    findings: list[Finding]
    jpegs: dict[str, bytes]  # finding id → the JPEG the vehicle sent
    pair: list[Finding] = field(default_factory=list)  # VEHICLE_TWO's, with ``with_pair``
    pair_outbox_backup: Path | None = None  # VEHICLE_TWO's outbox before it was drained


def _fill(data_dir: Path, findings: list[Finding], jpegs: dict[str, bytes]) -> Path:
    """Fill an outbox; returns a copy of it as filled (a later re-send of everything)."""
    with open_outbox(data_dir) as outbox:
        for f in findings:
            assert outbox.add(f, jpegs.get(f.id))
    backup = data_dir.with_name(f"{data_dir.name}-backup")
    shutil.copytree(data_dir, backup)
    return backup


def fill_and_drain(
    workdir: Path, *, with_pair: bool = False, db: str | None = None
) -> ReceivedOffice:
    """Drain the vehicles' outboxes into an office on ``db`` (default SQLite in workdir)."""
    db = db or str(workdir / "office" / "office.sqlite3")
    findings = _findings()
    images = road_jpegs(len(findings))  # full-size 512×512 road frames: the model reads them
    jpegs = {f.id: images[i] for i, f in enumerate(findings) if i != NO_IMAGE}
    pair = pair_findings() if with_pair else []
    jpegs.update({f.id: images[i] for i, f in enumerate(pair)})
    outboxes = {VEHICLE: workdir / "outbox", VEHICLE_TWO: workdir / "outbox-two"}
    backup = _fill(outboxes[VEHICLE], findings, jpegs)
    pair_backup = _fill(outboxes[VEHICLE_TWO], pair, jpegs) if with_pair else None
    broker = Broker(workdir / "broker")
    broker.start()
    try:
        with Office(workdir / "office", mqtt_cfg(broker.port), client_id="office-review",
                    db=db) as office:  # fmt: skip
            for vehicle in (VEHICLE, VEHICLE_TWO) if with_pair else (VEHICLE,):
                with open_outbox(outboxes[vehicle]) as outbox:
                    result = drain(mqtt_cfg(broker.port), outbox, vehicle, timeout_s=60)
                assert result.remaining == 0, result
            assert wait_until(lambda: office.store.counts().images == len(jpegs), 20)
            assert office.store.finding_ids() == {f.id for f in findings + pair}
    finally:
        broker.kill()
    return ReceivedOffice(workdir / "office", db, backup, findings, jpegs, pair, pair_backup)


def _copy(
    received: ReceivedOffice, tmp_path: Path, request: pytest.FixtureRequest
) -> ReceivedOffice:
    """A private copy of the received office for one test (images, and the database)."""
    copy = tmp_path / "office"
    shutil.copytree(received.office_dir, copy)
    if received.db.startswith("postgresql://"):
        db = clone_database(request.getfixturevalue("pg_cluster"), received.db)
    else:
        db = str(copy / "office.sqlite3")
    return dataclasses.replace(received, office_dir=copy, db=db)


def _module_db(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the work folder) or a new PostgreSQL database, per the parameter."""
    if request.param == "sqlite":
        return None
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return new_database(cluster)


# Every review test runs on both stores.
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def received(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ReceivedOffice:
    return fill_and_drain(tmp_path_factory.mktemp("received"), db=_module_db(request))


@pytest.fixture
def office(
    received: ReceivedOffice, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ReceivedOffice]:
    yield _copy(received, tmp_path, request)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def received_pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ReceivedOffice:
    return fill_and_drain(
        tmp_path_factory.mktemp("received-pair"), with_pair=True, db=_module_db(request)
    )


@pytest.fixture
def office_pair(
    received_pair: ReceivedOffice, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ReceivedOffice]:
    yield _copy(received_pair, tmp_path, request)


def sql(office: ReceivedOffice, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Rows of one read-only statement on the office's database, either store."""
    store = open_store(office.db, None, read_only=True)
    try:
        return [tuple(row) for row in store.query(statement, params)]
    finally:
        store.close()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`roadpatrol ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = roadpatrol(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def apply_reviews(capsys: pytest.CaptureFixture[str], office: ReceivedOffice) -> list[str]:
    """The reviews every test here starts from; returns the finding ids in fixture order."""
    ids = [f.id for f in office.findings]
    db = office.db
    for args in (
        [ids[0], "--not-damage", "--by", "ken", "--note", "shadow of a manhole"],
        [ids[1], "--not-damage", "--by", "ken"],
        [ids[2], "--grade", "3", "--types", "D40", "--by", "anna"],
        [ids[3], "--grade", "2", "--types", "D00,D10", "--by", "anna"],
        [ids[3], "--grade", "1", "--types", "d10,D00", "--by", "yuki"],  # the newest counts
        [ids[4], "--confirm", "--by", "ken"],
        [ids[5], "--grade", "0", "--by", "ken"],
        [ids[6], "--confirm", "--by", "anna"],
    ):
        rc, out, err = cli(capsys, "office", "review", "--db", db, *args, "--json")
        assert rc == 0, err
        assert json.loads(out)["finding_id"] == args[0]
    return ids
