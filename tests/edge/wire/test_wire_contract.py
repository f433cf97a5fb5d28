"""The one wire contract (edge.wire): every message has a schema, one vehicle-id pattern."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from edge.config.loader import ConfigError, load_config
from edge.wire.ids import VEHICLE_ID_PATTERN, VEHICLE_ID_RE, check_vehicle_id
from edge.wire.topics import Topics, model_topic
from edge.wire.validate import SCHEMA_KINDS, load_schema, schema_errors

from support import REPO

SCHEMA_DIR = REPO / "edge" / "wire" / "schemas"


def _vehicle_id_patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "vehicle_id" and isinstance(value, dict) and "pattern" in value:
                yield value["pattern"]
            yield from _vehicle_id_patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _vehicle_id_patterns(item)


def test_every_schema_file_is_a_known_kind_and_a_valid_schema() -> None:
    on_disk = sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.json"))
    assert on_disk == sorted(SCHEMA_KINDS)
    for kind in SCHEMA_KINDS:
        Draft202012Validator.check_schema(load_schema(kind))


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_the_schemas_use_the_one_vehicle_id_pattern(kind: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text("utf-8"))
    patterns = set(_vehicle_id_patterns(schema))
    if kind != "model-push":  # the push envelope names no vehicle: its topic does
        assert patterns == {"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
    assert patterns <= {f"^{VEHICLE_ID_PATTERN}$"}


@pytest.mark.parametrize("bad", ["car.1", "..", "-car", "car/1", "car+", "car#", "", "a" * 65])
def test_a_vehicle_id_the_config_refuses_the_wire_refuses_too(bad: str, tmp_path: Path) -> None:
    config = tmp_path / "vehicle.toml"
    config.write_text(f'[vehicle]\nvehicle_id = "{bad}"\ndata_dir = "{tmp_path}"\n')
    with pytest.raises(ConfigError, match="vehicle_id"):
        load_config(config)
    assert not VEHICLE_ID_RE.match(bad)
    with pytest.raises(ValueError, match="vehicle id"):
        check_vehicle_id(bad)
    status = {"schema": {"name": "roadpatrol.receipt", "version": 1}, "vehicle_id": bad}
    assert any(e.startswith("vehicle_id:") for e in schema_errors("receipt", status))


def test_topics_of_a_vehicle() -> None:
    topics = Topics("roadpatrol/v1", "car-7")
    assert topics.finding == "roadpatrol/v1/car-7/finding"
    assert topics.image("f") == "roadpatrol/v1/car-7/image/f"
    assert topics.receipt == "roadpatrol/v1/car-7/receipt"
    assert topics.model == "roadpatrol/v1/car-7/model"
    assert topics.model_result == "roadpatrol/v1/car-7/model/result"
    assert model_topic("roadpatrol/v1", None) == "roadpatrol/v1/fleet/model"


def test_a_model_result_off_its_schema_is_named() -> None:
    result = {
        "schema": {"name": "roadpatrol.model-result", "version": 1},
        "model_id": "road-damage-1.2.0",
        "result": "installed?",
        "vehicle_id": "car-7",
        "fleet": "yes",
    }
    errors = schema_errors("model-result", result)
    assert any(e.startswith("result:") for e in errors)
    assert any(e.startswith("fleet:") for e in errors)
