"""`config check` names every file and device the config needs that is not there; `config
example` prints every table; `run` never prints a traceback for a config problem."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from edge.config.loader import load_config

from support import REPO

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))
DEMO = REPO / "edge" / "demo"


def roadpatrol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


def _vehicle(tmp_path: Path, camera: str, gps: str, mqtt: str) -> Path:
    cfg = tmp_path / "vehicle.toml"
    cfg.write_text(
        f'[vehicle]\nvehicle_id = "paths"\ndata_dir = "{tmp_path / "data"}"\n\n'
        f"{camera}\n{gps}\n{mqtt}\n"
    )
    return cfg


MISSING_EVERYTHING_MQTT = """
[mqtt]
host = "127.0.0.1"
username = "chiba-07"
password_file = "secret/mqtt.password"
tls = { enabled = true, ca_file = "pki/ca.pem", certfile = "pki/car.pem", keyfile = "pki/car.key" }
"""


def test_check_names_every_missing_file_and_warns_about_missing_devices(tmp_path: Path) -> None:
    cfg = _vehicle(
        tmp_path,
        '[camera]\nsource = "device"\ndevice = "/dev/video-roadpatrol-test"',
        '[gps]\nsource = "serial"\nserial_port = "/dev/gps-roadpatrol-test"',
        MISSING_EVERYTHING_MQTT,
    )
    result = roadpatrol("config", "check", str(cfg))
    assert result.returncode == 1, result.stdout
    assert "OK" not in result.stdout
    for field, path in (
        ("mqtt.password_file", tmp_path / "secret" / "mqtt.password"),
        ("mqtt.tls.ca_file", tmp_path / "pki" / "ca.pem"),
        ("mqtt.tls.certfile", tmp_path / "pki" / "car.pem"),
        ("mqtt.tls.keyfile", tmp_path / "pki" / "car.key"),
    ):
        assert f"  {field}: {path}: no such file" in result.stderr, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 2, result.stderr
    assert "gps.serial_port: /dev/gps-roadpatrol-test: no such device now" in warnings[0]
    assert "camera.device: /dev/video-roadpatrol-test: no such device now" in warnings[1]
    assert "Traceback" not in result.stderr


def test_devices_alone_are_warnings_and_files_beside_the_config_are_found(
    tmp_path: Path,
) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "mqtt.password").write_text("s3cret\n")
    (tmp_path / "pki").mkdir()
    for name in ("ca.pem", "car.pem", "car.key"):
        (tmp_path / "pki" / name).write_text("-----BEGIN-----\n")
    cfg = _vehicle(
        tmp_path,
        '[camera]\nsource = "device"\ndevice = "/dev/video-roadpatrol-test"',
        '[gps]\nsource = "serial"\nserial_port = "/dev/gps-roadpatrol-test"',
        MISSING_EVERYTHING_MQTT,
    )
    # Checked from another folder: relative TLS and password paths are relative to the file.
    result = subprocess.run(
        [EXE, "config", "check", str(cfg)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert result.stderr.count(": warning: ") == 2
    assert load_config(cfg).mqtt.tls.ca_file == tmp_path / "pki" / "ca.pem"


def test_example_prints_every_sub_table() -> None:
    result = roadpatrol("config", "example")
    assert result.returncode == 0
    assert "see the sub-table" not in result.stdout
    assert "\n[mqtt.tls]\n" in result.stdout
    tls = result.stdout.split("\n[mqtt.tls]\n", 1)[1].split("\n[", 1)[0]
    for field in ("enabled = false", "# ca_file =", "# certfile =", "# keyfile ="):
        assert field in tls, tls
    assert tomllib.loads(result.stdout)["mqtt"]["tls"] == {"enabled": False}


def test_run_with_a_missing_certificate_warns_in_one_line_and_records(tmp_path: Path) -> None:
    cfg = _vehicle(
        tmp_path,
        f'[camera]\nsource = "folder"\npath = "{DEMO / "frames"}"\nfps = 4.0\nloop = true',
        f'[gps]\nsource = "nmea_file"\nnmea_file = "{DEMO / "chiba_drive.nmea"}"',
        '[mqtt]\nhost = "127.0.0.1"\ntls = { enabled = true, ca_file = "nope/ca.pem" }',
    )
    proc = subprocess.Popen(
        [EXE, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        # Both MQTT services have met the missing file once they said so.
        while time.monotonic() < deadline and proc.poll() is None:
            said = "".join(lines)
            if "service model_updates did not start" in said and "sync.publisher" in said:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the recorder stopped"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    ca = tmp_path / "nope" / "ca.pem"
    assert f"mqtt.tls.ca_file: {ca}: no such file (recording goes on)" in stderr
    assert f"service model_updates did not start: mqtt.tls.ca_file: {ca}" in stderr


def test_run_with_data_dir_on_a_file_says_so_in_one_line(tmp_path: Path) -> None:
    cfg = _vehicle(
        tmp_path,
        f'[camera]\nsource = "folder"\npath = "{DEMO / "frames"}"',
        f'[gps]\nsource = "nmea_file"\nnmea_file = "{DEMO / "chiba_drive.nmea"}"',
        "[mqtt]\nenabled = false",
    )
    (tmp_path / "data").write_text("a file where the data folder should be")
    result = roadpatrol("run", "--headless", "--config", str(cfg))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"roadpatrol run: vehicle.data_dir: {tmp_path / 'data'}: is a file, not a folder"
    ], result.stderr
