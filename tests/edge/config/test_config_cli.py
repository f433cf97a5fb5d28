"""`roadpatrol config check`: what is wrong, with field and line; and `run` refusing bad configs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge.config.check import example_toml
from edge.config.loader import AppConfig, load_config


def roadpatrol(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("roadpatrol")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


GOOD = """\
[vehicle]
vehicle_id = "chiba-07"
data_dir = "data"

[camera]
source = "folder"
path = "frames"

[gps]
source = "nmea_file"
nmea_file = "drive.nmea"
"""


@pytest.mark.slow
def test_good_file_passes_and_relative_paths_resolve_beside_it(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text(GOOD)
    (tmp_path / "frames").mkdir()
    (tmp_path / "drive.nmea").write_text("")
    result = roadpatrol("config", "check", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "chiba-07" in result.stdout
    config = load_config(cfg)
    assert config.vehicle.data_dir == tmp_path / "data"
    assert config.camera.path == tmp_path / "frames"


@pytest.mark.slow
def test_files_the_config_names_must_be_there(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text(GOOD)
    (tmp_path / "frames").write_text("a file, not the image folder")
    result = roadpatrol("config", "check", str(cfg))
    assert result.returncode == 1
    assert f"gps.nmea_file: {tmp_path / 'drive.nmea'}: no such file" in result.stderr
    assert f"camera.path: {tmp_path / 'frames'}: is a file, not a folder" in result.stderr
    assert "2 problem(s)" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text(GOOD + "\n[pipeline]\nqueue_size = 4\nsample_evry_m = 4\n")
    result = roadpatrol("config", "check", str(cfg))
    assert result.returncode == 1
    assert "line 15: pipeline.sample_evry_m: unknown key" in result.stderr


@pytest.mark.slow
def test_wrong_type_and_out_of_range_are_both_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text(
        GOOD.replace('vehicle_id = "chiba-07"', 'vehicle_id = "chiba 07/../x"')
        + '\n[pipeline]\njpeg_quality = 500\nstatus_hz = "fast"\n'
    )
    result = roadpatrol("config", "check", str(cfg))
    assert result.returncode == 1
    assert "line 2: vehicle.vehicle_id" in result.stderr
    assert "line 14: pipeline.jpeg_quality" in result.stderr and "100" in result.stderr
    assert "line 15: pipeline.status_hz" in result.stderr
    assert "3 problem(s)" in result.stderr


@pytest.mark.slow
def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text("[vehicle\nvehicle_id = 1\n")
    result = roadpatrol("config", "check", str(cfg))
    assert (
        result.returncode == 1 and "not valid TOML" in result.stderr and "line 1" in result.stderr
    )
    result = roadpatrol("config", "check", str(tmp_path / "nope.toml"))
    assert result.returncode == 1 and "file not found" in result.stderr


@pytest.mark.slow
def test_run_refuses_a_bad_config_with_exit_2_and_the_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "rp.toml"
    cfg.write_text("[camera]\nfps = -3\n")
    result = roadpatrol("run", "--headless", "--config", str(cfg))
    assert result.returncode == 2
    assert "camera.fps" in result.stderr and "line 2" in result.stderr


def test_example_lists_every_field_and_is_itself_a_valid_config() -> None:
    text = example_toml()
    raw = tomllib.loads(text)
    for section, model in AppConfig.model_fields.items():
        assert f"[{section}]" in text
        annotation = model.annotation
        assert annotation is not None
        for name in annotation.model_fields:  # type: ignore[union-attr]
            shown = (f"{name} =", f"# {name}", f"\n[{section}.{name}]\n")
            assert any(s in text for s in shown), (section, name)
    AppConfig.model_validate(raw)
