"""A vehicle's TOML file for a real `roadpatrol run` on the bundled demo drive, looping."""

from __future__ import annotations

from pathlib import Path

from support import REPO

DEMO = REPO / "edge" / "demo"


def looping_demo_config(
    path: Path,
    *,
    vehicle_id: str,
    data_dir: Path,
    fps: float,
    fallback_interval_s: float | None = None,
    replay_speed: float | None = None,
    extra: str = "",
) -> Path:
    """Write ``path``: the demo's frames looping at ``fps`` and its NMEA track; ``extra`` is
    TOML appended as it is (more sections, e.g. ``[mqtt]``). Returns ``path``."""
    sampling = (
        f"[sampling]\nfallback_interval_s = {fallback_interval_s}\n\n"
        if fallback_interval_s is not None
        else ""
    )
    speed = f"replay_speed = {replay_speed}\n" if replay_speed is not None else ""
    path.write_text(
        f'[vehicle]\nvehicle_id = "{vehicle_id}"\ndata_dir = "{data_dir}"\n\n'
        f'[camera]\nsource = "folder"\npath = "{DEMO / "frames"}"\nfps = {fps}\nloop = true\n\n'
        f"{sampling}"
        f'[gps]\nsource = "nmea_file"\nnmea_file = "{DEMO / "chiba_drive.nmea"}"\n{speed}'
        f"\n{extra}\n",
        encoding="utf-8",
    )
    return path
