"""`roadpatrol config check FILE` and `roadpatrol config example`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge.config.loader import AppConfig, ConfigError, load_config
from edge.config.paths import absent_paths, data_dir_problem, path_problem


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        # The check's verdict, not misuse: 1, as for absent paths below (other commands: 2).
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    absent = absent_paths(config)
    for warning in absent.warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    missing = missing_files(config) + list(absent.problems)
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
    problems = [p] if (p := data_dir_problem(config.vehicle.data_dir)) else []
    for field, path, is_folder in wanted:
        if path is not None and (problem := path_problem(field, path, folder=is_folder)):
            problems.append(problem)
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
    """Every section, sub-table and field with its default and description, as a commented
    TOML file."""
    lines = ["# roadpatrol configuration: every field, its default and what it does.", ""]
    defaults = AppConfig()
    for section_name in AppConfig.model_fields:
        lines += _example_table(section_name, getattr(defaults, section_name))
    return "\n".join(lines)


def _example_table(name: str, table: BaseModel) -> list[str]:
    """``[name]`` and its fields; a sub-table follows as ``[name.field]`` (TOML wants a
    table's own keys before its sub-tables)."""
    lines = [f"[{name}]"]
    subtables: list[tuple[str, BaseModel]] = []
    for field_name, field in type(table).model_fields.items():
        value = getattr(table, field_name)
        if isinstance(value, BaseModel):
            subtables.append((f"{name}.{field_name}", value))
            continue
        if field.description:
            lines.append(f"# {field.description}")
        if value is None:
            lines.append(f"# {field_name} =   (unset)")
        else:
            lines.append(f"{field_name} = {_toml_value(value)}")
    lines.append("")
    for sub_name, sub in subtables:
        description = type(table).model_fields[sub_name.rsplit(".", 1)[1]].description
        if description:
            lines.append(f"# {description}")
        lines += _example_table(sub_name, sub)
    return lines


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
