"""`roadpatrol config check FILE` and `roadpatrol config example`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge.config import AppConfig, ConfigError, load_config


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.path}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    missing = missing_files(config)
    if missing:
        # Valid, and `run` would still record, but not as the technician meant it to.
        print(f"{args.file}: {len(missing)} problem(s):", file=sys.stderr)
        for problem in missing:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.json:
        print(config.model_dump_json(indent=2))
    else:
        print(
            f"{args.file}: OK (vehicle {config.vehicle.vehicle_id}, camera {config.camera.source}, "
            f"gps {config.gps.source}, mqtt {'on' if config.mqtt.enabled else 'off'})"
        )
    return 0


def missing_files(config: AppConfig) -> list[str]:
    """Files and folders the config names that are not there (paths already resolved)."""
    wanted: list[tuple[str, Path | None, bool]] = []
    if config.gps.source == "nmea_file":
        wanted.append(("gps.nmea_file", config.gps.nmea_file, False))
    if config.camera.source in ("file", "folder"):
        wanted.append(("camera.path", config.camera.path, config.camera.source == "folder"))
    wanted.append(("model.package", config.model.package, False))
    wanted += [("model.trusted_keys", key, False) for key in config.model.trusted_keys]
    wanted.append(("privacy.plate_model", config.privacy.plate_model, False))
    problems = []
    for field, path, is_folder in wanted:
        if path is None:
            continue
        if is_folder and not path.is_dir():
            problems.append(f"{field}: {path}: no such folder")
        elif not is_folder and not path.is_file():
            problems.append(f"{field}: {path}: no such file")
    return problems


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def example_toml() -> str:
    """Every section and field with its default and description, as a commented TOML file."""
    lines = ["# roadpatrol configuration: every field, its default and what it does.", ""]
    defaults = AppConfig()
    for section_name, section_field in AppConfig.model_fields.items():
        section: BaseModel = getattr(defaults, section_name)
        lines.append(f"[{section_name}]")
        for name, field in type(section).model_fields.items():
            if field.description:
                lines.append(f"# {field.description}")
            value = getattr(section, name)
            if value is None:
                lines.append(f"# {name} =   (unset)")
            elif isinstance(value, BaseModel):
                lines.append(f"# {name}: see the sub-table [{section_name}.{name}]")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
        del section_field
    return "\n".join(lines)


def cmd_example(args: argparse.Namespace) -> int:
    del args
    print(example_toml())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="check a configuration file")
    csub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = csub.add_parser("check", help="validate FILE; say what is wrong, with field and line")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="print the effective config as JSON")
    p.set_defaults(handler=cmd_check)
    p = csub.add_parser("example", help="print a commented config with every default")
    p.set_defaults(handler=cmd_example)
