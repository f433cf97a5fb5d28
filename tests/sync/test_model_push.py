"""`office push-model` over a real mosquitto to a recorder driving the demo route."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config.loader import AppConfig, ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.model_store import ModelStore
from edge.recording.recorder import Recorder
from edge.status import Alert
from edge.wire.validate import schema_errors
from sync.model_updates import start_for_recorder

from support.broker import Broker, wait_until
from support.collect import first_json_message
from support.model_store import (
    SHIPPED_INT8,
    GatedRecorder,
    copy_package,
    make_keys,
    model_ids_by_seq,
)

OLD, NEW = "road-damage-1.0.1", "road-damage-1.0.2"
SWITCH_AT_FRAME = 60


@pytest.fixture
def setup(tmp_path: Path, broker: Broker) -> tuple[AppConfig, Path, Path]:
    private, public = make_keys(tmp_path / "keys")
    _, _ = make_keys(tmp_path / "stranger")
    base = demo_config(tmp_path / "data", fast=True)
    config = base.model_copy(
        update={
            "model": ModelConfig(trusted_keys=(public,)),
            "mqtt": MqttConfig(host="127.0.0.1", port=broker.port),
        }
    )
    old = copy_package(SHIPPED_INT8, tmp_path / "old", version="1.0.1", key=private)
    ModelStore.from_config(config).install(old, activate=True)
    new = copy_package(
        SHIPPED_INT8, tmp_path / "new", version="1.0.2", key=private, activate_on_arrival=True
    )
    return config, new, tmp_path / "stranger" / "model-signing.key"


def _result_topic(config: AppConfig) -> str:
    return f"roadpatrol/v1/{config.vehicle.vehicle_id}/model/result"


def _push(package: Path, port: int, *target: str) -> int:
    return main(["office", "push-model", str(package), *target, "--broker", f"127.0.0.1:{port}"])


@pytest.mark.slow
def test_push_mid_drive_switches_the_model_and_findings_carry_it(
    setup: tuple[AppConfig, Path, Path], broker: Broker
) -> None:
    config, new, _ = setup
    recorder = GatedRecorder(config, SWITCH_AT_FRAME)
    service = start_for_recorder(recorder)
    assert service is not None
    recorder.start()
    try:
        assert recorder.reached.wait(120)
        assert _push(new, broker.port, "--vehicle", config.vehicle.vehicle_id) == 0
        assert wait_until(lambda: recorder.status().model.model_id == NEW, 30)
        recorder.release.set()
        assert recorder.wait_ended(timeout_s=300)
        status = recorder.status()
    finally:
        recorder.release.set()
        recorder.stop()
        service.stop()
    assert status.model.error is None
    result = first_json_message(broker.port, _result_topic(config))
    assert result["model_id"] == NEW and result["result"] == "installed" and result["active"]
    assert result["schema"] == {"name": "roadpatrol.model-result", "version": 1}
    assert schema_errors("model-result", result) == []
    ids = model_ids_by_seq(config.vehicle.data_dir)
    assert OLD in ids and NEW in ids
    switch = ids.index(NEW)
    assert all(i == OLD for i in ids[:switch]) and all(i == NEW for i in ids[switch:])


@pytest.mark.slow
def test_a_retained_fleet_push_signed_by_a_stranger_is_refused_when_the_vehicle_connects(
    setup: tuple[AppConfig, Path, Path], broker: Broker, tmp_path: Path
) -> None:
    config, _, stranger_key = setup
    forged = copy_package(SHIPPED_INT8, tmp_path / "forged", version="6.6.6", key=stranger_key)
    assert _push(forged, broker.port, "--fleet") == 0  # the vehicle is offline now

    recorder = Recorder(config, lockstep=True)
    service = start_for_recorder(recorder)
    assert service is not None
    try:
        assert service.handled.wait(30)
        status = recorder.status()
    finally:
        service.stop()
        recorder.stop()
    assert status.model.model_id == OLD
    assert status.model.last_update_model_id == "road-damage-6.6.6"
    assert status.model.last_update_result == "refused"
    assert "unknown key" in (status.model.last_update_reason or "")
    # The model in use still grades: no alarm telling the driver to grade by hand.
    assert status.model.error is None and Alert.MODEL_REFUSED not in status.alerts
    assert ModelStore.from_config(config).installed_ids() == [OLD]
    result = first_json_message(broker.port, _result_topic(config))
    assert result["result"] == "refused" and result["fleet"] is True
    assert schema_errors("model-result", result) == []
    assert "unknown key" in str(result["reason"])


def test_push_model_misuse_and_unsigned_package(
    setup: tuple[AppConfig, Path, Path], broker: Broker, tmp_path: Path
) -> None:
    unsigned = copy_package(SHIPPED_INT8, tmp_path / "unsigned", version="1.0.9")
    assert _push(unsigned, broker.port, "--fleet") == 1
    assert _push(unsigned, broker.port, "--vehicle", "a/b") == 2
    with pytest.raises(SystemExit) as exc:
        _push(unsigned, broker.port)  # neither --vehicle nor --fleet
    assert exc.value.code == 2
