"""Who decides that a pushed package becomes active (its signed manifest, never the unsigned
message), and how the vehicle reports what it did: a live recorder on the demo drive, a real
mosquitto, the publisher's retained status message and the driver's screen."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.config.loader import AppConfig, ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.grading.manifest import load_manifest
from edge.model_store import ModelStore, verify_signature
from edge.recording.recorder import Recorder
from edge.status import Alert, ModelStatus, Status
from edge.wire.topics import model_topic
from edge.wire.validate import schema_errors
from sync import service as sync_service
from sync.model_updates import ModelUpdates, start_for_recorder
from sync.office.push import publish_retained, push_payload
from sync.payloads import status_payload
from tui.app import create_app
from tui.i18n import CATALOGUE

from support.broker import Broker, wait_until
from support.collect import first_json_message
from support.model_store import SHIPPED_INT8, copy_package, make_keys
from support.tui_screen import pilot_wait, screen_text

OLD = "road-damage-1.0.1"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keys(tmp_path / "keys")


def _config(tmp_path: Path, port: int, public: Path, *, fast: bool) -> AppConfig:
    base = demo_config(tmp_path / "data", fast=fast)
    mqtt_cfg = MqttConfig(host="127.0.0.1", port=port, status_interval_s=0.5)
    return base.model_copy(update={"model": ModelConfig(trusted_keys=(public,)), "mqtt": mqtt_cfg})


def _signed(tmp_path: Path, version: str, key: Path, on_arrival: bool | None) -> Path:
    """A copy of the shipped package signed through `roadpatrol model sign`."""
    package = copy_package(SHIPPED_INT8, tmp_path / version, version=version)
    argv = ["model", "sign", str(package), "--key", str(key)]
    if on_arrival is not None:
        argv.append("--activate-on-arrival" if on_arrival else "--no-activate-on-arrival")
    assert main(argv) == 0
    return package


def _push(package: Path, port: int, vehicle_id: str, *extra: str) -> int:
    argv = ["office", "push-model", str(package), "--vehicle", vehicle_id, *extra]
    return main([*argv, "--broker", f"127.0.0.1:{port}"])


def _handled(updates: ModelUpdates, send: Callable[[], object]) -> dict[str, Any]:
    """Send one push and return the vehicle's result once it has dealt with it."""
    updates.handled.clear()
    send()
    assert updates.handled.wait(60), "the vehicle never handled the push"
    assert updates.last_result is not None
    return updates.last_result


def test_sign_writes_the_activation_decision_into_the_signed_manifest(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    assert load_manifest(SHIPPED_INT8).activate_on_arrival is False
    package = copy_package(SHIPPED_INT8, tmp_path / "pkg", version="2.0.0")
    # A manifest written before the field existed stays valid and says "install only".
    before = json.loads(package.read_text(encoding="utf-8"))
    before.pop("activate_on_arrival", None)
    package.write_text(json.dumps(before), encoding="utf-8")
    assert load_manifest(package).activate_on_arrival is False
    argv = ["model", "sign", str(package), "--key", str(private)]
    assert main([*argv, "--activate-on-arrival"]) == 0
    out, err = capsys.readouterr()
    assert Path(out.strip()) == package.with_suffix(".sig") and "activate_on_arrival: true" in err
    after = json.loads(package.read_text(encoding="utf-8"))
    assert after.pop("activate_on_arrival") is True and after == before  # nothing else moved
    assert verify_signature(package, (public,)) == public  # the signature covers the decision

    signed_true = package.read_bytes()
    assert main(argv) == 0  # no flag: the manifest keeps what it says
    assert package.read_bytes() == signed_true
    assert main([*argv, "--no-activate-on-arrival"]) == 0
    assert load_manifest(package).activate_on_arrival is False
    verify_signature(package, (public,))

    # A key file that is not a private key: refused before the manifest is touched.
    unchanged = package.read_bytes()
    rc = main(["model", "sign", str(package), "--key", str(public), "--activate-on-arrival"])
    assert rc == 1 and package.read_bytes() == unchanged
    assert "not a readable unencrypted PEM private key" in capsys.readouterr().err


@pytest.mark.slow
def test_the_manifest_decides_and_a_tampered_push_is_refused_and_reported_in_the_status(
    tmp_path: Path, broker: Broker, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    config = _config(tmp_path, broker.port, public, fast=False)  # paced like a real camera
    vehicle = config.vehicle.vehicle_id
    store = ModelStore.from_config(config)
    store.install(_signed(tmp_path, "1.0.1", private, None), activate=True)
    install_only = _signed(tmp_path, "1.0.2", private, False)
    to_tamper = _signed(tmp_path, "1.0.3", private, False)

    recorder = Recorder(config)
    updates = start_for_recorder(recorder)
    assert updates is not None
    publisher = sync_service.start_for_recorder(recorder)
    recorder.start()
    try:
        assert wait_until(lambda: recorder.status().model.graded > 0, 60)

        # (a) The push asks to activate, the signed manifest does not: installed only.
        result = _handled(updates, lambda: _push(install_only, broker.port, vehicle))
        assert result["result"] == "installed" and result["active"] is False
        assert result["activate_on_arrival"] is False
        assert store.active_id() == OLD
        assert "road-damage-1.0.2" in store.installed_ids()
        time.sleep(1.5)  # longer than the recorder's store poll: nothing to switch to
        model = recorder.status().model
        assert model.model_id == OLD
        assert (model.last_update_model_id, model.last_update_result) == (
            "road-damage-1.0.2",
            "installed",
        )
        assert model.last_update_activated is False and model.last_update_reason is None

        # (c) Someone flips the decision in the message's manifest after signing.
        message = json.loads(push_payload(to_tamper, activate=True))
        manifest = json.loads(base64.b64decode(message["manifest_b64"]))
        manifest["activate_on_arrival"] = True
        message["manifest_b64"] = base64.b64encode(json.dumps(manifest).encode()).decode()
        topic = model_topic(config.mqtt.topic_prefix, vehicle)
        result = _handled(
            updates,
            lambda: publish_retained(config.mqtt, topic, json.dumps(message).encode(), 10),
        )
        assert result["result"] == "refused" and result["model_id"] == "road-damage-1.0.3"
        assert "changed after signing" in result["reason"]
        assert store.active_id() == OLD
        assert "road-damage-1.0.3" not in store.installed_ids()

        graded_at_refusal = recorder.status().model.graded
        assert wait_until(lambda: recorder.status().model.graded > graded_at_refusal, 30)
        status = recorder.status()
        assert status.recording and status.model.model_id == OLD
        assert status.model.last_update_result == "refused"
        assert "changed after signing" in (status.model.last_update_reason or "")
        # The model in use is fine: no "model refused, grade by hand" alarm for the driver.
        assert status.model.error is None and Alert.MODEL_REFUSED not in status.alerts

        # The office sees it in the vehicle's retained status message.
        doc = first_json_message(
            broker.port,
            f"{config.mqtt.topic_prefix}/{vehicle}/status",
            lambda d: (d.get("last_model_update") or {}).get("result") == "refused",
        )
        assert schema_errors("status", doc) == []
        assert doc["schema"] == {"name": "roadpatrol.status", "version": 2}
        update = doc["last_model_update"]
        assert update["model_id"] == "road-damage-1.0.3" and update["activated"] is False
        assert "changed after signing" in update["reason"]
        assert doc["model_id"] == OLD and doc["recording"] is True

        # (d) And the driver sees one line about it, in both languages.
        asyncio.run(_screen_shows_the_refusal(recorder))
    finally:
        recorder.stop()
        updates.stop()
        publisher.stop()


async def _screen_shows_the_refusal(recorder: Recorder) -> None:
    en, ja = (
        CATALOGUE[lang]["model.update.refused"].format(id="road-damage-1.0.3", reason="")
        for lang in ("en", "ja")
    )
    en, ja = en.rstrip(" ·"), ja.rstrip(" ·")
    app: Any = create_app(recorder, lang="en")
    async with app.run_test(size=(120, 40)) as pilot:
        assert await pilot_wait(pilot, lambda: en in screen_text(app), 10), screen_text(app)
        await pilot.press("l")
        assert await pilot_wait(pilot, lambda: ja in screen_text(app), 10), screen_text(app)
        assert en not in screen_text(app)
    # On the dashboard's small terminal the verdict still shows; the rest may be cut.
    verdict = CATALOGUE["en"]["model.update.refused"].split("{id}")[0].strip()
    app = create_app(recorder, lang="en")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await pilot_wait(pilot, lambda: verdict in screen_text(app), 10), screen_text(app)


@pytest.mark.slow
def test_the_manifest_activates_no_activate_holds_back_and_a_redelivery_keeps_a_rollback(
    tmp_path: Path, broker: Broker, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    config = _config(tmp_path, broker.port, public, fast=True)
    vehicle = config.vehicle.vehicle_id
    store = ModelStore.from_config(config)
    store.install(_signed(tmp_path, "1.0.1", private, None), activate=True)
    held_back = _signed(tmp_path, "1.0.4", private, True)
    eager = _signed(tmp_path, "1.0.5", private, True)

    recorder = Recorder(config, lockstep=True)
    updates = start_for_recorder(recorder)
    assert updates is not None
    try:
        # The manifest says activate, the office holds it back: installed only.
        result = _handled(updates, lambda: _push(held_back, broker.port, vehicle, "--no-activate"))
        assert result["result"] == "installed" and result["activate_on_arrival"] is True
        assert result["active"] is False and store.active_id() == OLD

        # (b) The manifest says activate, the push does not object: active, the grader switches.
        result = _handled(updates, lambda: _push(eager, broker.port, vehicle))
        assert result["result"] == "installed" and result["active"] is True
        assert store.active_id() == "road-damage-1.0.5"
        assert recorder.grader is not None and recorder.grader.model_id == "road-damage-1.0.5"
        assert recorder.status().model.last_update_activated is True

        # A technician rolls back; the retained push arrives again when the vehicle reconnects.
        assert store.rollback() == OLD
        updates.stop()
        again = start_for_recorder(recorder)
        assert again is not None
        updates = again
        assert updates.handled.wait(60)
        result = updates.last_result or {}
        assert result["model_id"] == "road-damage-1.0.5"
        assert result["result"] == "already installed" and result["active"] is False
        assert store.active_id() == OLD
        assert recorder.reload_model() is True and recorder.grader.model_id == OLD
    finally:
        updates.stop()
        recorder.stop()


def test_status_schema_v2_carries_the_last_update_and_still_accepts_v1() -> None:
    snapshot = Status(
        vehicle_id="veh-1",
        model=ModelStatus(
            model_id=OLD,
            last_update_model_id="road-damage-9.9.9",
            last_update_result="refused",
            last_update_reason="x" * 5000,  # a long refusal is cut to the schema's limit
            last_update_at_utc="2024-05-14T03:12:00.250000Z",
        ),
    )
    doc = json.loads(
        status_payload(
            vehicle_id="veh-1", boot_id="b1", seq=3, online=True, snapshot=snapshot, queue_depth=0
        )
    )
    assert schema_errors("status", doc) == []
    assert doc["last_model_update"]["result"] == "refused"
    assert len(doc["last_model_update"]["reason"]) == 1000

    claims_active = json.loads(json.dumps(doc))
    claims_active["last_model_update"]["activated"] = True  # a refusal never activates
    assert schema_errors("status", claims_active) != []
    v2_without = {k: v for k, v in doc.items() if k != "last_model_update"}
    assert any("last_model_update" in e for e in schema_errors("status", v2_without))
    # A vehicle not yet updated still sends v1, which has no such field: the office accepts it.
    v1 = {**v2_without, "schema": {"name": "roadpatrol.status", "version": 1}}
    assert schema_errors("status", v1) == []
    assert schema_errors("status", {**doc, "schema": v1["schema"]}) != []
    # No push yet: null, and the screen's Status survives the trip through JSON unchanged.
    empty = json.loads(
        status_payload(
            vehicle_id="veh-1", boot_id="b1", seq=4, online=True, snapshot=Status(), queue_depth=0
        )
    )
    assert empty["last_model_update"] is None and schema_errors("status", empty) == []
    assert Status.from_json(snapshot.to_json()) == snapshot
