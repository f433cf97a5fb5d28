"""A recorder on the demo drive picks up the store's active model, switches mid-drive between
two frames, and keeps its model when a newly activated one fails to load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.config.loader import AppConfig, ModelConfig, demo_config
from edge.grading.manifest import load_manifest
from edge.model_store import ModelStore
from edge.model_store.shipped import default_model_package
from edge.recording.recorder import Recorder
from edge.status import Alert

from support.model_store import (
    SHIPPED_INT8,
    GatedRecorder,
    copy_package,
    make_keys,
    model_ids_by_seq,
)

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

OLD, NEW = "road-damage-1.0.1", "road-damage-1.0.2"
SWITCH_AT_FRAME = 60


@pytest.fixture
def setup(tmp_path: Path) -> tuple[AppConfig, ModelStore, Path]:
    private, public = make_keys(tmp_path / "keys")
    base = demo_config(tmp_path / "data", fast=True)
    config = base.model_copy(update={"model": ModelConfig(trusted_keys=(public,))})
    store = ModelStore.from_config(config)
    for version, activate in (("1.0.1", True), ("1.0.2", False)):
        package = copy_package(SHIPPED_INT8, tmp_path / version, version=version, key=private)
        store.install(package, activate=activate)
    return config, store, private


def test_activate_mid_drive_switches_between_frames_and_findings_name_their_model(
    setup: tuple[AppConfig, ModelStore, Path],
) -> None:
    config, store, _ = setup
    recorder = GatedRecorder(config, SWITCH_AT_FRAME)
    assert recorder.status().model.model_id == OLD  # the store's active one, not the shipped
    recorder.start()
    try:
        assert recorder.reached.wait(120)
        store.activate(NEW)
        # The status loop polls the store about once a second, while grading is held.
        for _ in range(100):
            if recorder.status().model.model_id == NEW:
                break
            time.sleep(0.1)
        assert recorder.status().model.model_id == NEW
        recorder.release.set()
        assert recorder.wait_ended(timeout_s=300)
        status = recorder.status()
    finally:
        recorder.release.set()
        recorder.stop()
    assert status.model.error is None and Alert.MODEL_REFUSED not in status.alerts
    assert recorder.dropped_graded == 0
    ids = model_ids_by_seq(config.vehicle.data_dir)
    assert OLD in ids and NEW in ids
    switch = ids.index(NEW)
    # Findings opened before the switch carry the old id unless a later, better sighting
    # graded by the new model replaced them; after the switch nothing is graded by the old.
    assert all(i == OLD for i in ids[:switch]) and all(i == NEW for i in ids[switch:])


def test_a_package_that_fails_in_the_recorder_keeps_the_previous_grader(
    setup: tuple[AppConfig, ModelStore, Path],
) -> None:
    config, store, _ = setup
    recorder = Recorder(config, lockstep=True)
    try:
        assert recorder.grader is not None and recorder.grader.model_id == OLD
        # Bit rot after installation: the installed NEW model no longer matches its manifest.
        manifest_path = store.manifest_path(NEW)
        model = manifest_path.parent / load_manifest(manifest_path).file
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
        store.pointer_path.write_text(json.dumps({"active": NEW, "previous": OLD}))

        assert recorder.reload_model() is False
        status = recorder.status()
        assert status.model.model_id == OLD
        assert status.model.error is not None
        assert f"model {NEW} refused, still grading with {OLD}" in status.model.error
        assert "sha256" in status.model.error
        assert Alert.MODEL_REFUSED in status.alerts
        # The refused package is not retried every second; a good one clears the error.
        assert recorder.reload_model() is False
        store.activate(OLD)
        assert recorder.reload_model() is False and recorder.grader.model_id == OLD
        status = recorder.status()
        assert status.model.error is None and Alert.MODEL_REFUSED not in status.alerts
    finally:
        recorder.stop()


def test_a_broken_active_package_at_start_falls_back_to_the_shipped_one(
    setup: tuple[AppConfig, ModelStore, Path],
) -> None:
    config, store, _ = setup
    manifest_path = store.manifest_path(OLD)
    model = manifest_path.parent / load_manifest(manifest_path).file
    model.write_bytes(model.read_bytes()[:-100])  # truncated on disk after activation
    recorder = Recorder(config, lockstep=True)
    try:
        status = recorder.status()
        shipped = load_manifest(default_model_package()).model_id
        assert recorder.grader is not None and status.model.model_id == shipped != OLD
        assert status.model.error is not None
        assert f"model {OLD} refused, using the configured or shipped" in status.model.error
        assert Alert.MODEL_REFUSED in status.alerts
    finally:
        recorder.stop()
