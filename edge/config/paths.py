"""What is wrong with a path the config names, in the words a technician needs.

"no such file" for a folder that is there sends the technician looking for the wrong thing,
so a folder where a file is wanted is "is a directory", and a file where a folder is wanted
is "is a file, not a folder". ``data_dir`` is checked by `config check` and by `run` alike: the
recorder cannot keep anything without it, so `run` refuses to start rather than traceback.

A config can also be valid TOML with every field in range and still not run as meant: a TLS CA
file or password file that was never copied, a serial port or camera that is not plugged
in. `config check` names each one; `roadpatrol run` warns about each one at start (in one
line, never a traceback) and records anyway.

Files are problems (exit 1 in `config check`): nothing makes them appear by themselves.
Devices are warnings: a USB GPS receiver or camera may be plugged in after the check, and the
recorder opens them again and again until they are there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge.config.loader import AppConfig


def path_problem(field: str, path: Path, *, folder: bool) -> str | None:
    """``field: path: why`` when ``path`` is not the existing file (or folder) wanted."""
    if folder:
        if path.is_dir():
            return None
        why = "is a file, not a folder" if path.exists() else "no such folder"
    else:
        if path.is_file():
            return None
        why = "is a directory, not a file" if path.is_dir() else "no such file"
    return f"{field}: {path}: {why}"


def data_dir_problem(path: Path) -> str | None:
    """Why ``vehicle.data_dir`` cannot hold the outbox (it may not exist yet: it is created)."""
    field = "vehicle.data_dir"
    if path.exists():
        if not path.is_dir():
            return f"{field}: {path}: is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{field}: {path}: not writable by this user"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{field}: {path}: cannot be created, {parent} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{field}: {path}: cannot be created in {parent} (not writable by this user)"
    return None


@dataclass(frozen=True, slots=True)
class AbsentPaths:
    problems: tuple[str, ...] = ()  # files that must exist before the config is usable
    warnings: tuple[str, ...] = ()  # devices that may still appear (USB receivers, cameras)


def absent_paths(config: AppConfig) -> AbsentPaths:
    """The MQTT credential/TLS files and the GPS/camera devices ``config`` names that are not
    there now (paths already resolved against the config file's folder)."""
    return AbsentPaths(
        problems=tuple(_absent_mqtt_files(config)), warnings=tuple(_absent_devices(config))
    )


def _absent_mqtt_files(config: AppConfig) -> list[str]:
    mqtt = config.mqtt
    if not mqtt.enabled:
        return []  # nothing reads them
    wanted: list[tuple[str, Path | None]] = [("mqtt.password_file", mqtt.password_file)]
    if mqtt.tls.enabled:
        wanted += [
            ("mqtt.tls.ca_file", mqtt.tls.ca_file),
            ("mqtt.tls.certfile", mqtt.tls.certfile),
            ("mqtt.tls.keyfile", mqtt.tls.keyfile),
        ]
    return [
        problem
        for field, path in wanted
        if path is not None and (problem := path_problem(field, path, folder=False))
    ]


def _absent_devices(config: AppConfig) -> list[str]:
    warnings = []
    if config.gps.source == "serial" and not Path(config.gps.serial_port).exists():
        warnings.append(
            f"gps.serial_port: {config.gps.serial_port}: no such device now (unplugged? "
            "the recorder keeps trying to open it)"
        )
    device = config.camera.device
    # A bare number is a V4L2 index ("0" = /dev/video0), opened by OpenCV.
    path = Path(f"/dev/video{device}") if device.isdigit() else Path(device)
    if config.camera.source == "device" and not path.exists():
        warnings.append(
            f"camera.device: {device}: no such device now (unplugged? the recorder keeps "
            "trying to open it)"
        )
    return warnings
