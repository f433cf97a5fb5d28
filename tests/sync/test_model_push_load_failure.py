"""A pushed package that is activated but then fails to load in the running recorder is not
reported active: the result says installed, not active, why, and which model grades instead.

No honest package passes `model install`'s verification and then fails the recorder's load:
both build the same Grader (same onnxruntime options but the thread count) from the same
files, checked against the same keys. What can come between them is the disk: the installed
copy is damaged after its checks (a storage fault, injected here by flipping one byte of the
installed model file right after the real install returns). The recorder's real switch then
refuses it by its hash and keeps its model; everything else is real: mosquitto, the signed
push through `office push-model`, the store, the recorder and its ActiveModel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.config.loader import ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.grading.manifest import load_manifest
from edge.model_store import ModelStore
from edge.model_store.store import InstallResult
from edge.recording.recorder import Recorder
from edge.status import Alert
from edge.wire.validate import schema_errors
from sync.model_updates import start_for_recorder
from sync.payloads import status_payload

from support.broker import Broker, wait_until
from support.collect import first_json_message
from support.model_store import SHIPPED_INT8, copy_package, make_keys

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

OLD, NEW = "road-damage-1.0.1", "road-damage-1.0.7"


def test_an_activated_package_that_fails_to_load_is_reported_not_active(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = make_keys(tmp_path / "keys")
    base = demo_config(tmp_path / "data", fast=True)
    config = base.model_copy(
        update={
            "model": ModelConfig(trusted_keys=(public,)),
            "mqtt": MqttConfig(host="127.0.0.1", port=broker.port),
        }
    )
    store = ModelStore.from_config(config)
    old = copy_package(SHIPPED_INT8, tmp_path / "old", version="1.0.1", key=private)
    store.install(old, activate=True)
    new = copy_package(
        SHIPPED_INT8, tmp_path / "new", version="1.0.7", key=private, activate_on_arrival=True
    )
    model_file = load_manifest(new).file

    recorder = Recorder(config, lockstep=True)  # not started: no status-loop poll races us
    assert recorder.grader is not None and recorder.grader.model_id == OLD
    updates = start_for_recorder(recorder)
    assert updates is not None
    real_install = updates.store.install

    def install_then_damage(*args: Any, **kwargs: Any) -> InstallResult:
        installed = real_install(*args, **kwargs)
        target = store.packages_dir / installed.model_id / model_file
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        return installed

    monkeypatch.setattr(updates.store, "install", install_then_damage)
    try:
        updates.handled.clear()
        argv = ["office", "push-model", str(new), "--vehicle", config.vehicle.vehicle_id]
        assert main([*argv, "--broker", f"127.0.0.1:{broker.port}"]) == 0
        assert updates.handled.wait(60), "the vehicle never handled the push"
        result = updates.last_result or {}

        # The recorder refused it and grades with the previous model ...
        assert recorder.grader is not None and recorder.grader.model_id == OLD
        # ... and the store's pointer followed, so a restart does not retry the broken one.
        assert store.active_id() == OLD
        assert result["model_id"] == NEW and result["result"] == "installed"
        assert result["active"] is False and result["activate_on_arrival"] is True
        reason = result["reason"]
        assert reason.startswith("activated but failed to load in the recorder: ")
        assert NEW in reason and "sha256" in reason
        assert reason.endswith(f"fell back to {OLD}")

        # The office sees the same in the retained result.
        topic = f"{config.mqtt.topic_prefix}/{config.vehicle.vehicle_id}/model/result"
        assert first_json_message(broker.port, topic) == result

        # The recorder's status says so, with the reason, and the status payload carries it.
        model = recorder.status().model
        assert (model.last_update_model_id, model.last_update_result) == (NEW, "installed")
        assert model.last_update_activated is False and model.last_update_reason == reason
        assert model.model_id == OLD
        payload = json.loads(
            status_payload(
                vehicle_id="v",
                boot_id="b",
                seq=1,
                online=True,
                snapshot=recorder.status(),
                queue_depth=0,
            )
        )
        assert schema_errors("status", payload) == []
        assert payload["last_model_update"]["reason"] == reason
        # Grading goes on with the previous model, so no "mark by hand" alert stays up.
        assert wait_until(lambda: Alert.MODEL_REFUSED not in recorder.status().alerts, 10)
    finally:
        updates.stop()
        recorder.stop()
