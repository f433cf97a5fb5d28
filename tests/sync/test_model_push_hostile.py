"""Model updates cannot be replayed, downgraded or used to stop the update client (issue 16).

Pushes travel through a real mosquitto to the vehicle's real update client; packages are
copies of the shipped one, signed with `roadpatrol model sign`.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.config.loader import AppConfig, ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.model_store import ModelStore
from edge.recording.recorder import Recorder
from edge.wire.topics import model_topic
from sync.model_updates import ModelUpdates, start_for_recorder
from sync.office.push import publish_retained, push_payload

from support.broker import Broker, wait_until
from support.model_store import SHIPPED_INT8, copy_package, make_keys

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

NEW, OLD = "road-damage-1.0.5", "road-damage-1.0.1"


@pytest.fixture
def vehicle(tmp_path: Path, broker: Broker) -> Iterator[tuple[AppConfig, Path, ModelUpdates]]:
    """A vehicle with 1.0.1 active and its update client connected; yields the private key."""
    private, public = make_keys(tmp_path / "keys")
    base = demo_config(tmp_path / "data", fast=True)
    mqtt_cfg = MqttConfig(host="127.0.0.1", port=broker.port)
    config = base.model_copy(
        update={"model": ModelConfig(trusted_keys=(public,)), "mqtt": mqtt_cfg}
    )
    ModelStore.from_config(config).install(_signed(tmp_path, "1.0.1", private), activate=True)
    recorder = Recorder(config, lockstep=True)
    updates = start_for_recorder(recorder)
    assert updates is not None
    try:
        yield config, private, updates
    finally:
        updates.stop()
        recorder.stop()


def _signed(tmp_path: Path, version: str, key: Path, on_arrival: bool = True) -> Path:
    package = copy_package(SHIPPED_INT8, tmp_path / version, version=version)
    flag = "--activate-on-arrival" if on_arrival else "--no-activate-on-arrival"
    assert main(["model", "sign", str(package), "--key", str(key), flag]) == 0
    return package


def _send(config: AppConfig, updates: ModelUpdates, payload: bytes) -> dict[str, Any]:
    topic = model_topic(config.mqtt.topic_prefix, config.vehicle.vehicle_id)
    return _handled(updates, lambda: publish_retained(config.mqtt, topic, payload, 30))


def _handled(updates: ModelUpdates, send: Callable[[], object]) -> dict[str, Any]:
    updates.handled.clear()
    updates.last_result = None
    send()
    assert updates.handled.wait(60), "the vehicle never handled the push"
    assert updates.last_result is not None
    return updates.last_result


def test_an_older_signed_package_pushed_to_activate_is_refused(
    tmp_path: Path,
    vehicle: tuple[AppConfig, Path, ModelUpdates],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, private, updates = vehicle
    store = ModelStore.from_config(config)
    result = _send(
        config, updates, push_payload(_signed(tmp_path, "1.0.5", private), activate=True)
    )
    assert (result["result"], result["active"]) == ("installed", True)
    assert store.active_id() == NEW

    older = _signed(tmp_path, "1.0.3", private)
    result = _send(config, updates, push_payload(older, activate=True))
    assert result["result"] == "refused" and result["model_id"] == "road-damage-1.0.3"
    assert f"older than {NEW}" in result["reason"]
    assert store.active_id() == NEW and "road-damage-1.0.3" not in store.installed_ids()
    assert updates.recorder.grader is not None and updates.recorder.grader.model_id == NEW

    # Locally a technician may go back, but must say so.
    cli = ["model", "install", str(older), "--data-dir", str(config.vehicle.data_dir)]
    keys = ["--trusted-key", str(config.model.trusted_keys[0])]
    capsys.readouterr()
    assert main([*cli, *keys, "--activate"]) == 1
    assert "--allow-downgrade" in capsys.readouterr().err
    assert main([*cli, *keys, "--activate", "--allow-downgrade"]) == 0
    assert store.active_id() == "road-damage-1.0.3"


def test_a_replayed_push_with_a_changed_model_id_does_not_undo_a_rollback(
    tmp_path: Path, vehicle: tuple[AppConfig, Path, ModelUpdates]
) -> None:
    config, private, updates = vehicle
    store = ModelStore.from_config(config)
    genuine = push_payload(_signed(tmp_path, "1.0.5", private), activate=True)
    assert _send(config, updates, genuine)["active"] is True
    assert store.rollback() == OLD
    assert updates.recorder.reload_model() is True

    replay = json.loads(genuine)
    replay["model_id"] = "road-damage-9.9.9"  # unsigned: it must decide nothing
    result = _send(config, updates, json.dumps(replay).encode())
    assert result["result"] == "refused"
    assert "road-damage-9.9.9" in result["reason"] and NEW in result["reason"]
    assert store.active_id() == OLD

    # The genuine message delivered again: it says what is true, and the rollback stays.
    result = _send(config, updates, genuine)
    assert (result["model_id"], result["result"], result["active"]) == (
        NEW,
        "already installed",
        False,
    )
    assert store.active_id() == OLD
    assert updates.recorder.grader is not None and updates.recorder.grader.model_id == OLD


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[1,2,3]", "breaks roadpatrol.model-push v1"),
        (b'{"schema": "roadpatrol.model-push"}', "required property"),
        (b"[" * 100_000, "not JSON"),
        (b"\xff\xfe not json", "not JSON"),
    ],
    ids=["array", "fields missing", "deep nesting", "binary"],
)
def test_a_broken_push_is_refused_and_the_client_keeps_handling_pushes(
    tmp_path: Path,
    vehicle: tuple[AppConfig, Path, ModelUpdates],
    payload: bytes,
    reason: str,
) -> None:
    config, private, updates = vehicle
    result = _send(config, updates, payload)
    assert result["result"] == "refused" and reason in result["reason"]
    assert updates.recorder.status().model.last_update_result == "refused"
    # The same client, still subscribed, handles the next real push.
    good = push_payload(_signed(tmp_path, "1.0.5", private), activate=True)
    result = _send(config, updates, good)
    assert (result["result"], result["active"]) == ("installed", True)


def test_a_push_over_the_size_limit_is_refused_unread(
    vehicle: tuple[AppConfig, Path, ModelUpdates],
) -> None:
    config, _, updates = vehicle
    assert config.mqtt.model_push_max_mb == 40.0  # the default: the shipped fp32 pushes as 16
    huge = b'{"schema": "roadpatrol.model-push", "model_b64": "' + b"A" * 50_000_000 + b'"}'
    result = _send(config, updates, huge)
    assert result["result"] == "refused"
    assert "50,000,052 bytes, over the limit of 41,943,040" in result["reason"]
    assert "refused unread" in result["reason"]
    assert wait_until(lambda: updates.recorder.status().model.model_id == OLD, 5)
    # Refused before parsing: handling it allocates nothing near its size (json.loads and
    # base64 would have added a copy or two of 50 MB).
    tracemalloc.start()
    try:
        assert updates.handle(huge)["result"] == "refused"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
