"""Payload schemas, the mqtt config section and the reconnect backoff (no broker needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from edge.backoff import Backoff
from edge.config.mqtt import MqttConfig
from edge.types import (
    Damage,
    Finding,
    FindingOrigin,
    FixMode,
    FixQuality,
    Position,
    PositionSource,
)
from edge.wire.ids import new_finding_id
from edge.wire.serialize import finding_from_dict, finding_to_dict
from edge.wire.validate import SCHEMA_KINDS, load_schema, schema_errors
from sync.payloads import finding_payload

unit = st.floats(0, 1, allow_nan=False)
positions = st.builds(
    Position,
    lat_deg=st.floats(-90, 90, allow_nan=False),
    lon_deg=st.floats(-180, 180, allow_nan=False),
    source=st.sampled_from(PositionSource),
    fix_age_s=st.floats(0, 1e4, allow_nan=False),
    fix_mode=st.sampled_from(FixMode),
    fix_quality=st.sampled_from(FixQuality),
    hdop=st.none() | st.floats(0, 99, allow_nan=False),
    speed_mps=st.none() | st.floats(0, 90, allow_nan=False),
    heading_deg=st.none() | st.floats(0, 360, allow_nan=False),
)
damages = st.builds(
    Damage,
    type_code=st.sampled_from(["D00", "D10", "D20", "D40"]),
    score=unit,
    box_norm=st.tuples(unit, unit, unit, unit),
    grade=st.integers(0, 3),
)
findings = st.builds(
    Finding,
    id=st.builds(new_finding_id),
    vehicle_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,20}\Z"),
    boot_id=st.uuids().map(str),
    seq=st.integers(0, 2**40),
    captured_at_utc=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    position=st.none() | positions,
    grade=st.integers(0, 3),
    damages=st.lists(damages, max_size=5).map(tuple),
    model_id=st.text(max_size=40),
    origin=st.sampled_from(FindingOrigin),
    sightings=st.integers(1, 1000),
    distance_m=st.none() | st.floats(0, 1e7, allow_nan=False),
)


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_each_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert f"roadpatrol.{kind}" in schema["title"]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(findings, st.none() | st.booleans())
def test_every_finding_payload_fits_its_schema_and_round_trips(f: Finding, has_image) -> None:
    doc = json.loads(finding_payload(finding_to_dict(f), has_image=has_image))
    assert schema_errors("finding", doc) == []
    assert doc["schema"] == {"name": "roadpatrol.finding", "version": 1}
    body = {k: v for k, v in doc.items() if k not in ("schema", "has_image")}
    assert finding_from_dict(body) == f


def _valid_finding() -> dict:
    f = Finding(
        id=new_finding_id(),
        vehicle_id="veh-1",
        boot_id="0a715bfe-29d6-4d6c-a491-ecbec45fddfd",
        seq=3,
        captured_at_utc=datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=1),
        position=None,
        grade=3,
        damages=(Damage("D40", 0.9, (0.1, 0.1, 0.2, 0.2), 3),),
        model_id="m-1",
    )
    return json.loads(finding_payload(finding_to_dict(f)))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"grade": 4}, "grade"),
        ({"id": "../../etc/passwd"}, "id"),
        ({"vehicle_id": "a/b"}, "vehicle_id"),
        ({"vehicle_id": "+"}, "vehicle_id"),
        ({"captured_at_utc": "yesterday"}, "captured_at_utc"),
        ({"surprise": 1}, "(top)"),
        ({"schema": {"name": "roadpatrol.finding", "version": 2}}, "schema/version"),
        ({"seq": "3"}, "seq"),
    ],
)
def test_finding_schema_rejects_bad_fields_and_names_them(change: dict, where: str) -> None:
    errors = schema_errors("finding", {**_valid_finding(), **change})
    assert errors and any(e.startswith(f"{where}:") for e in errors), errors


def test_mqtt_config_refuses_bad_values_and_names_the_field(tmp_path: Path) -> None:
    for bad, field in [
        ({"topic_prefix": "roadpatrol/#"}, "topic_prefix"),
        ({"topic_prefix": "a//b"}, "topic_prefix"),
        ({"port": 0}, "port"),
        ({"protocol": "4"}, "protocol"),
        ({"reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect_min_s"),
        ({"tls": {"enabled": True, "certfile": "c.pem"}}, "keyfile"),
        ({"brokr": "x"}, "brokr"),
    ]:
        with pytest.raises(ValidationError) as exc:
            MqttConfig.model_validate(bad)
        assert field in str(exc.value), (bad, str(exc.value))


def test_password_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n", encoding="utf-8")
    cfg = MqttConfig(username="veh-1", password_file=secret)
    assert cfg.read_password() == "s3cret"
    monkeypatch.setenv("RP_MQTT_PW", "from-env")
    assert MqttConfig(username="u", password_env="RP_MQTT_PW").read_password() == "from-env"
    with pytest.raises(ValueError, match="RP_MISSING"):
        MqttConfig(username="u", password_env="RP_MISSING").read_password()
    with pytest.raises(ValueError, match=str(tmp_path / "absent")):
        MqttConfig(username="u", password_file=tmp_path / "absent").read_password()
    assert MqttConfig().effective_client_id("veh-9") == "roadpatrol-veh-9"


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    lows = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [lows.next_delay_s() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    highs = Backoff(1.0, 8.0, rand=lambda: 0.999999)
    assert [round(highs.next_delay_s(), 3) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    highs.reset()
    assert round(highs.next_delay_s(), 3) == 1.0
