"""Config is strict (issue 16): no coercion from strings, linear checks, clear path reports.

Through the real `roadpatrol` command, as a technician runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

EXE = str(Path(sys.executable).with_name("roadpatrol"))


def roadpatrol(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout_s)


def _write(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "rp.toml"
    cfg.write_text(body, encoding="utf-8")
    return cfg


def test_strings_are_not_booleans_or_numbers(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path,
        f"""\
[vehicle]
data_dir = "{tmp_path / "data"}"

[camera]
source = "folder"
path = "{tmp_path}"
loop = "yes"
fps = 4

[mqtt]
enabled = "no"
port = "1883"
""",
    )
    check = roadpatrol("config", "check", str(cfg))
    assert check.returncode == 1
    assert "line 7: camera.loop: Input should be a valid boolean" in check.stderr
    assert "line 11: mqtt.enabled: Input should be a valid boolean" in check.stderr
    assert "line 12: mqtt.port: Input should be a valid integer" in check.stderr
    assert "fps" not in check.stderr  # an integer where a float is wanted is fine
    assert "Traceback" not in check.stderr
    run = roadpatrol("run", "--headless", "--config", str(cfg))
    assert run.returncode == 2 and "configuration refused" in run.stderr
    assert "mqtt.enabled: Input should be a valid boolean" in run.stderr
    assert not (tmp_path / "data").exists()  # nothing started


def test_sixteen_thousand_unknown_keys_are_checked_in_linear_time(tmp_path: Path) -> None:
    keys = "\n".join(f"unknown_{i} = {i}" for i in range(16_000))
    cfg = _write(tmp_path, f'[vehicle]\nvehicle_id = "x"\n[camera]\n{keys}\n')
    # The old line lookup rescanned the file per problem: minutes. One pass is well under this.
    check = roadpatrol("config", "check", str(cfg), timeout_s=60)
    assert check.returncode == 1
    assert "line 4: camera.unknown_0: unknown key" in check.stderr
    assert "line 53: camera.unknown_49: unknown key" in check.stderr
    assert "... and 15950 more problems" in check.stderr
    assert len(check.stderr.splitlines()) == 52  # the heading, 50 problems, the count


def test_a_huge_file_is_refused_with_its_size(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "# padding\n" * 200_000)
    check = roadpatrol("config", "check", str(cfg))
    assert check.returncode == 1
    assert "2,000,000 bytes, over the 1,048,576-byte limit for a config file" in check.stderr


def test_a_data_dir_that_is_a_file_is_refused_by_check_and_by_run(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    cfg = _write(tmp_path, f'[vehicle]\ndata_dir = "{tmp_path / "data"}"\n')
    check = roadpatrol("config", "check", str(cfg))
    assert check.returncode == 1
    assert f"vehicle.data_dir: {tmp_path / 'data'}: is a file, not a folder" in check.stderr
    run = roadpatrol("run", "--headless", "--config", str(cfg))
    assert run.returncode == 2, run.stderr
    assert f"vehicle.data_dir: {tmp_path / 'data'}: is a file, not a folder" in run.stderr
    assert "Traceback" not in run.stderr
    assert (tmp_path / "data").read_text() == "not a folder"


def test_a_directory_where_a_file_is_wanted_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "keys.pem").mkdir()
    (tmp_path / "model.json").mkdir()
    cfg = _write(
        tmp_path,
        f"""\
[vehicle]
data_dir = "{tmp_path / "data"}"

[model]
package = "model.json"
trusted_keys = ["keys.pem"]
""",
    )
    check = roadpatrol("config", "check", str(cfg))
    assert check.returncode == 1
    assert f"model.package: {tmp_path / 'model.json'}: is a directory, not a file" in check.stderr
    assert f"model.trusted_keys: {tmp_path / 'keys.pem'}: is a directory, not a file" in (
        check.stderr
    )
    assert "no such file" not in check.stderr
    as_config = roadpatrol("config", "check", str(tmp_path))
    assert as_config.returncode == 1
    assert "is a directory, not a config file" in as_config.stderr
