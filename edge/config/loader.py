"""One TOML file configures a vehicle; it is validated completely at start.

Unknown keys are refused everywhere (a typo must not silently fall back to a default), every
field has a documented default, and errors name the field and the line of the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from edge.config.capture import CameraConfig, SamplingConfig
from edge.config.gps import GpsConfig
from edge.config.mqtt import MqttConfig
from edge.config.outbox import OutboxConfig
from edge.config.privacy import PrivacyConfig
from edge.config.screen import ScreenConfig
from edge.config.types import SECTION_CONFIG, ConfigPath, ConfigPaths
from edge.wire.ids import VEHICLE_ID_PATTERN

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the installed tree: edge/, models/
SHIPPED_MODELS_DIR = PACKAGE_ROOT / "models"
DEMO_DIR = PACKAGE_ROOT / "edge" / "demo"


class _Section(BaseModel):
    model_config = SECTION_CONFIG


class VehicleConfig(_Section):
    vehicle_id: str = Field(
        "demo-vehicle",
        pattern=f"^{VEHICLE_ID_PATTERN}$",
        description="This vehicle's id: MQTT topics and every finding carry it.",
    )
    data_dir: ConfigPath = Field(
        Path("/var/lib/roadpatrol"),
        description="Outbox database, images, model store and the status socket live here.",
    )


class ModelConfig(_Section):
    package: ConfigPath | None = Field(
        None,
        description="Model package (.json manifest or .onnx). Default: the shipped package "
        "whose manifest says default_for_vehicles.",
    )
    threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime threads. Default: all cores but one."
    )
    trusted_keys: ConfigPaths = Field(
        (),
        description="Ed25519 public key files (PEM) whose signatures make a model package "
        "installable. Empty: no package can be installed into the store.",
    )
    store_dir: ConfigPath | None = Field(
        None,
        description="Model store (installed packages, the active one). Default: "
        "DATA_DIR/models. While it has no active package the recorder uses `package`.",
    )


class PipelineConfig(_Section):
    queue_size: int = Field(
        4, ge=1, le=256, description="Graded frames waiting for the recorder; oldest dropped."
    )
    merge_distance_m: float = Field(
        12.0,
        ge=0.0,
        description="Sightings of the same damage type within this distance driven (and a "
        "similar place in the image) merge into one finding.",
    )
    merge_min_iou: float = Field(
        0.1, ge=0.0, le=1.0, description="Minimum box overlap (IoU) for two sightings to merge."
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of stored frames.")
    status_hz: float = Field(4.0, gt=0.0, le=30.0, description="Status snapshots per second.")


class AppConfig(_Section):
    vehicle: VehicleConfig = VehicleConfig()
    camera: CameraConfig = CameraConfig()
    sampling: SamplingConfig = SamplingConfig()
    gps: GpsConfig = GpsConfig()
    model: ModelConfig = ModelConfig()
    pipeline: PipelineConfig = PipelineConfig()
    outbox: OutboxConfig = OutboxConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    mqtt: MqttConfig = MqttConfig()
    screen: ScreenConfig = ScreenConfig()


class ConfigError(Exception):
    """A config file that must not start the recorder; ``problems`` name field and line."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: " + "; ".join(problems))

    def lines(self) -> list[str]:
        """How every command shows a refused file (edge.cli, `config check`): the file and
        count, then one problem a line."""
        return [
            f"{self.path}: configuration refused, {len(self.problems)} problem(s):",
            *(f"  {problem}" for problem in self.problems),
        ]


MAX_CONFIG_BYTES = 1024 * 1024  # a vehicle's file is a few KB; more is not a config
MAX_PROBLEMS_SHOWN = 50  # past that, the count says enough

_HEADER = re.compile(r"\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"""^("?)([A-Za-z0-9_-]+)\1\s*=""")


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line number (1-based) of every table header and key in TOML text, read once: one
    lookup per problem, so a file with thousands of problems is checked in linear time."""
    index: dict[tuple[str, ...], int] = {}
    current: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        header = _HEADER.fullmatch(line)
        if header:
            current = tuple(p.strip().strip('"') for p in header.group(1).split("."))
            index.setdefault(current, number)
            continue
        match = _KEY.match(line)
        if match:
            index.setdefault((*current, match.group(2)), number)
    return index


def _line_of(index: dict[tuple[str, ...], int], loc: tuple[str | int, ...]) -> int | None:
    """The line of the key at ``loc``, else of the nearest enclosing key or table (a field
    inside an inline table such as ``tls = { ... }`` is on that table's line)."""
    parts = tuple(str(p) for p in loc)
    for end in range(len(parts), 0, -1):
        if parts[:end] in index:
            return index[parts[:end]]
    return None


def validate_config(raw: dict[str, Any], path: Path, text: str = "") -> AppConfig:
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, validation_problems(exc, text)) from exc


def validation_problems(exc: ValidationError, text: str = "") -> list[str]:
    """Each validation error as ``line N: field: message`` (the line when ``text`` has it),
    at most MAX_PROBLEMS_SHOWN of them and then a count."""
    index = key_lines(text) if text else {}
    problems = []
    errors = exc.errors()
    for err in errors[:MAX_PROBLEMS_SHOWN]:
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(index, loc)
        where = f"line {line}: " if line else ""
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}{field}: {message}")
    if len(errors) > MAX_PROBLEMS_SHOWN:
        problems.append(f"... and {len(errors) - MAX_PROBLEMS_SHOWN} more problems")
    return problems


def load_config(path: Path) -> AppConfig:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ConfigError(path, ["is a directory, not a config file"])
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                path,
                [f"{size:,} bytes, over the {MAX_CONFIG_BYTES:,}-byte limit for a config file"],
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read it: {exc}"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from exc
    config = validate_config(raw, path, text)
    return _resolve_relative_paths(config, path.parent)


def _resolve_relative_paths(config: AppConfig, base: Path) -> AppConfig:
    """Paths in a config file are relative to the file, not to wherever the service starts."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    return config.model_copy(
        update={
            "vehicle": config.vehicle.model_copy(update={"data_dir": fix(config.vehicle.data_dir)}),
            "privacy": config.privacy.model_copy(
                update={"plate_model": fix(config.privacy.plate_model)}
            ),
            "camera": config.camera.model_copy(update={"path": fix(config.camera.path)}),
            "gps": config.gps.model_copy(update={"nmea_file": fix(config.gps.nmea_file)}),
            "model": config.model.model_copy(
                update={
                    "package": fix(config.model.package),
                    "store_dir": fix(config.model.store_dir),
                    "trusted_keys": tuple(base / k for k in config.model.trusted_keys),
                }
            ),
            "mqtt": _resolve_mqtt_paths(config.mqtt, fix),
        }
    )


def _resolve_mqtt_paths(mqtt: MqttConfig, fix: Callable[[Path | None], Path | None]) -> MqttConfig:
    tls = mqtt.tls
    tls = tls.model_copy(
        update={
            "ca_file": fix(tls.ca_file),
            "certfile": fix(tls.certfile),
            "keyfile": fix(tls.keyfile),
        }
    )
    return mqtt.model_copy(update={"password_file": fix(mqtt.password_file), "tls": tls})


def demo_config(data_dir: Path, *, fast: bool = False) -> AppConfig:
    """The bundled demo drive: real road frames and an NMEA track near Chiba City Hall."""
    return AppConfig(
        vehicle=VehicleConfig(vehicle_id="demo-chiba-01", data_dir=data_dir),
        camera=CameraConfig(source="folder", path=DEMO_DIR / "frames", fps=DEMO_FPS, pace=not fast),
        sampling=SamplingConfig(),
        mqtt=MqttConfig(enabled=False),
        gps=GpsConfig(
            source="nmea_file",
            nmea_file=DEMO_DIR / "chiba_drive.nmea",
            replay_speed=0 if fast else 1.0,
        ),
    )


DEMO_FPS = 1.6
