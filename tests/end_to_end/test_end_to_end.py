"""The whole chain as processes: `roadpatrol run` (camera replay, NMEA replay, shipped model,
outbox, MQTT publisher) → a real mosquitto → `roadpatrol office receive` → GeoJSON export."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.grading.manifest import load_manifest
from edge.model_store.shipped import default_model_package
from edge.status import Alert
from edge.status_socket import RemoteRecorder, socket_path_for

from support import REPO
from support.broker import Broker, wait_until

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

DEMO = REPO / "edge" / "demo"
EXE = str(Path(sys.executable).with_name("roadpatrol"))


def _query(db: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    """Rows of a database another process writes; none while it does not exist yet."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _outbox(data: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    return _query(data / "outbox.sqlite3", sql)


def test_findings_travel_from_the_vehicle_to_the_office_map(broker: Broker, tmp_path: Path) -> None:
    data, office_db, images = tmp_path / "vehicle", tmp_path / "office.sqlite3", tmp_path / "img"
    cfg = tmp_path / "vehicle.toml"
    cfg.write_text(
        f'[vehicle]\nvehicle_id = "chiba-e2e"\ndata_dir = "{data}"\n'
        f'[camera]\nsource = "folder"\npath = "{DEMO / "frames"}"\nfps = 4.0\n'
        f'[gps]\nsource = "nmea_file"\nnmea_file = "{DEMO / "chiba_drive.nmea"}"\n'
        "replay_speed = 2.5\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    office_log = tmp_path / "office.log"
    with office_log.open("wb") as log_file:
        office = subprocess.Popen(
            [
                EXE,
                "office",
                "receive",
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--db",
                str(office_db),
                "--images",
                str(images),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    # The office's persistent session must exist before the vehicle publishes (as in the
    # field, where the office receiver runs all the time).
    assert wait_until(lambda: b"subscribed to" in office_log.read_bytes(), 60), broker.log()
    vehicle = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The replay ends after 120 frames at 4 fps, once the last photo is through the
        # privacy stage; the recorder says so on its status socket. Then everything drains.
        sock = socket_path_for(data)
        assert wait_until(lambda: sock.exists() or vehicle.poll() is not None, 60)
        with RemoteRecorder(sock).connect(timeout_s=10.0) as remote:
            assert wait_until(lambda: Alert.REPLAY_FINISHED in remote.status().alerts, 180)

        def drained() -> bool:
            # A finding's record and its photo travel as two messages: both must be out.
            rows = _outbox(
                data,
                "SELECT COUNT(*) FROM findings WHERE sent_at IS NULL OR image_state = 'pending'",
            )
            return bool(rows) and rows[0][0] == 0

        assert wait_until(drained, 60), "the outbox did not drain to the broker"
    finally:
        vehicle.send_signal(signal.SIGTERM)
        assert vehicle.wait(timeout=30) == 0
    stored = {r[0] for r in _outbox(data, "SELECT id FROM findings")}
    # Photos pass the privacy stage, whose hand-over drops the lowest-graded waiting photo
    # when the anonymiser falls behind (a busy CPU): the record stays, without a photo. The
    # office's map must show exactly the photos the vehicle stored.
    photographed = {
        r[0] for r in _outbox(data, "SELECT id FROM findings WHERE image_name IS NOT NULL")
    }
    assert photographed, "no finding kept its photo"

    def at_office(sql: str) -> set[str]:
        return {r[0] for r in _query(office_db, sql)}

    def office_has_all() -> bool:
        # A photo travels after its record: the last records may be in before their photos.
        return at_office("SELECT id FROM findings") == stored and photographed <= at_office(
            "SELECT finding_id FROM images"
        )

    try:
        if not wait_until(office_has_all, 60):
            missing = photographed - at_office("SELECT finding_id FROM images")
            states = _outbox(data, "SELECT id, image_state, image_receipted_at FROM findings")
            pytest.fail(
                f"the office is missing {len(stored - at_office('SELECT id FROM findings'))} "
                f"findings and {len(missing)} photos; vehicle's states of those photos: "
                f"{[s for s in states if s[0] in missing]}"
            )
    finally:
        office.send_signal(signal.SIGINT)
        office.wait(timeout=30)
        if office.poll() is None:
            os.kill(office.pid, signal.SIGKILL)
    export = subprocess.run(
        [EXE, "office", "export", "--db", str(office_db), "--format", "geojson"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    features = json.loads(export.stdout)["features"]
    assert sorted(f["properties"]["id"] for f in features) == sorted(stored)  # each once
    model_id = load_manifest(default_model_package()).model_id
    for f in features:
        lon, lat = f["geometry"]["coordinates"][:2]
        assert abs(lat - 35.6073) < 0.01 and abs(lon - 140.1063) < 0.01
        assert f["properties"]["grade"] in (1, 2, 3)
        assert f["properties"]["model_id"] == model_id
        assert f["properties"]["vehicle_id"] == "chiba-e2e"
        has_photo = f["properties"]["id"] in photographed
        assert bool(f["properties"]["image_path"]) == has_photo
