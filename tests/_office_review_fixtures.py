"""An office database filled over a real mosquitto from a real outbox, for the review tests.

Built once per test module (a broker, a receiver, a drain of real road images), then copied for
each test, which reviews and exports its own copy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _mqtt_fixtures import (
    Broker,
    Office,
    make_finding,
    mqtt_cfg,
    open_outbox,
    road_jpegs,
    wait_until,
)

from edge.cli import main as roadpatrol
from edge.types import Damage, Finding
from sync.drain import drain

VEHICLE = "veh-rev"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
METRE_LAT = 1 / 111_195  # degrees of latitude per metre
NO_IMAGE = 5  # the index of the finding sent without an image


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


@dataclass(frozen=True)
class ReceivedOffice:
    office_dir: Path  # office.sqlite3 + images/, as the receiver left them
    outbox_backup: Path  # the vehicle's outbox before it was drained: a re-send of everything
    findings: list[Finding]
    jpegs: dict[str, bytes]  # finding id → the JPEG the vehicle sent


def fill_and_drain(workdir: Path) -> ReceivedOffice:
    findings = _findings()
    images = road_jpegs(len(findings))  # full-size 512×512 road frames: the model reads them
    jpegs = {f.id: images[i] for i, f in enumerate(findings) if i != NO_IMAGE}
    data_dir = workdir / "outbox"
    with open_outbox(data_dir) as outbox:
        for f in findings:
            assert outbox.add(f, jpegs.get(f.id))
    backup = workdir / "outbox-backup"
    shutil.copytree(data_dir, backup)
    broker = Broker(workdir / "broker")
    broker.start()
    try:
        with Office(workdir / "office", mqtt_cfg(broker.port), client_id="office-review") as office:
            with open_outbox(data_dir) as outbox:
                result = drain(mqtt_cfg(broker.port), outbox, VEHICLE, timeout_s=60)
            assert result.remaining == 0, result
            assert wait_until(lambda: office.store.counts().images == len(jpegs), 20)
            assert office.store.finding_ids() == {f.id for f in findings}
    finally:
        broker.kill()
    return ReceivedOffice(workdir / "office", backup, findings, jpegs)


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> ReceivedOffice:
    return fill_and_drain(tmp_path_factory.mktemp("received"))


@pytest.fixture
def office(received: ReceivedOffice, tmp_path: Path) -> Iterator[ReceivedOffice]:
    """A private copy of the received office for one test."""
    copy = tmp_path / "office"
    shutil.copytree(received.office_dir, copy)
    yield dataclasses.replace(received, office_dir=copy)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`roadpatrol ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = roadpatrol(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def apply_reviews(capsys: pytest.CaptureFixture[str], office: ReceivedOffice) -> list[str]:
    """The reviews every test here starts from; returns the finding ids in fixture order."""
    ids = [f.id for f in office.findings]
    db = str(office.office_dir / "office.sqlite3")
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
