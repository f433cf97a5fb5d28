"""Files and devices a valid config names that are not there.

A config can be valid TOML with every field in range and still not run as meant: a TLS CA
file or password file that was never copied, a serial port or camera that is not plugged
in. `config check` names each one; `roadpatrol run` warns about each one at start (in one
line, never a traceback) and records anyway.

Files are problems (exit 1 in `config check`): nothing makes them appear by themselves.
Devices are warnings: a USB GPS receiver or camera may be plugged in after the check, and the
recorder opens them again and again until they are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.config import AppConfig


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
    problems = []
    for field, path in wanted:
        if path is not None and not path.is_file():
            why = "is a folder, not a file" if path.is_dir() else "no such file"
            problems.append(f"{field}: {path}: {why}")
    return problems


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
