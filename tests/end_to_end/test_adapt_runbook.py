"""The teacher-data loop of the README's runbook, end to end, each step reading what the step
before it printed or wrote (no hand editing): findings reviewed in a real receiver's database →
`office export-graded` → `model adapt` (two steps) → `model compare --gate` → `model sign` →
`office push-model` over a real mosquitto → the vehicle on the demo drive grades with the new
model. A few minutes: the image-head refit and the gate read the RDD folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.config.loader import ModelConfig, demo_config
from edge.config.mqtt import MqttConfig
from edge.grading.manifest import load_manifest
from edge.model_store import ModelStore, verify_signature
from edge.recording.recorder import Recorder
from sync.model_updates import start_for_recorder

from support.broker import Broker
from support.model_data import RDD_TRAIN
from support.model_store import SHIPPED_INT8, copy_package, make_keys, model_ids_by_seq
from support.office_review import ReceivedOffice, apply_reviews, cli

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

pytest.importorskip("torch", reason="model adapt needs the train extra (installed by .ci/run)")
NEW_VERSION = "1.2.0"


def _ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc, out, err = cli(capsys, *argv)
    assert rc == 0, (argv, out, err)
    return out


@pytest.mark.slow
# The runbook is the embedded office's (SQLite); the review tests cover both stores.
@pytest.mark.parametrize("received", ["sqlite"], indirect=True)
@pytest.mark.timeout(1500)  # about 3 minutes on a quiet 2-core machine, 7 on a busy one
def test_office_verdicts_retrain_the_model_and_the_vehicle_grades_with_it(
    office: ReceivedOffice,
    broker: Broker,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # 1. The office reviews what the vehicle sent (confirm, correct, dismiss) and exports it.
    apply_reviews(capsys, office)
    exported = json.loads(
        _ok(capsys, "office", "export-graded", "--db", str(office.office_dir / "office.sqlite3"),
            "--images", str(office.office_dir / "images"), "--out", str(tmp_path / "graded"))
    )  # fmt: skip
    assert exported["images"] == 7

    # 2. The technician adapts the vehicles' model to those verdicts (two steps here).
    models = tmp_path / "models"
    # 1.1.0 as the fleet's current default, beside the new one
    base = copy_package(SHIPPED_INT8, models, default_for_vehicles=True)
    copy_package(SHIPPED_INT8.with_name("road-damage-fp32-1.1.0.json"), models)
    # The base's own RDD folder: the image head is refitted on its training split and the
    # gate reads its validation split, as in the runbook. Two steps at a small learning rate
    # keep the network close to the base, so the gate's verdict is not left to chance.
    voc = RDD_TRAIN
    out = _ok(
        capsys, "model", "adapt", "--base", str(base), "--graded", exported["out"],
        "--voc", str(voc), "--out", str(models), "--run", str(tmp_path / "run"),
        "--version", NEW_VERSION, "--max-steps", "2", "--rehearsal-images", "8",
        "--graded-per-step", "4", "--rdd-per-step", "4", "--lr", "1e-5",
    )  # fmt: skip
    summary = json.loads(out.strip().splitlines()[-1])
    new = Path(summary["int8"])
    assert new == models / f"road-damage-{NEW_VERSION}.json" and Path(summary["fp32"]).is_file()
    manifest = load_manifest(new)
    assert not manifest.default_for_vehicles  # not before the gate
    (source,) = manifest.training["graded_sources"]
    assert source["folder"] == str(Path(exported["out"]).resolve())
    assert source["images_per_type"] == {k: v for k, v in exported["folders"].items() if v}
    assert source["reviewers"] == ["anna", "ken", "yuki"]
    assert source["captured_utc_range"][0].startswith("2024-04-01")  # the month-old finding
    assert manifest.training["adapted_from"]["package"] == "road-damage-1.1.0"
    # The month-old week is the only group whose absence leaves two classes to train on.
    assert summary["heldout_group"] == "week-2024-W14"

    # 3. The gate: no worse than the base on the RDD split and on the held-out office images.
    gate = _ok(
        capsys, "model", "compare", str(base), str(new), "--voc", str(voc), "--split", "val",
        "--folders", summary["heldout"], "--gate",
    )  # fmt: skip
    assert f"road-damage-{NEW_VERSION} is now marked default_for_vehicles" in gate
    assert load_manifest(new).default_for_vehicles and not load_manifest(base).default_for_vehicles

    # 4. Signed to activate on arrival, pushed to the vehicle, which grades its drive with it.
    private, public = make_keys(tmp_path / "keys")
    _ok(capsys, "model", "sign", str(new), "--key", str(private), "--activate-on-arrival")
    assert verify_signature(new, (public,)) == public
    config = demo_config(tmp_path / "vehicle", fast=True)
    config = config.model_copy(
        update={
            "model": ModelConfig(trusted_keys=(public,)),
            "mqtt": MqttConfig(host="127.0.0.1", port=broker.port, status_interval_s=0.5),
        }
    )
    recorder = Recorder(config, lockstep=True)
    updates = start_for_recorder(recorder)
    assert updates is not None
    try:
        updates.handled.clear()
        _ok(capsys, "office", "push-model", str(new), "--vehicle", config.vehicle.vehicle_id,
            "--broker", f"127.0.0.1:{broker.port}")  # fmt: skip
        assert updates.handled.wait(60), "the vehicle never handled the push"
        result = updates.last_result or {}
        assert result["result"] == "installed" and result["active"] is True, result
        assert ModelStore.from_config(config).active_id() == f"road-damage-{NEW_VERSION}"
        recorder.start()
        assert recorder.wait_ended(timeout_s=300)
    finally:
        updates.stop()
        recorder.stop()
    ids = model_ids_by_seq(config.vehicle.data_dir)
    assert ids and set(ids) == {f"road-damage-{NEW_VERSION}"}
