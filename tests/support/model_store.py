"""Signed real model packages for the model-store tests: keys, signed copies, broken variants."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge.config.loader import AppConfig
from edge.grading.manifest import load_manifest, sha256_of
from edge.model_store import generate_keypair, sign_manifest
from edge.recording.recorder import Recorder
from edge.types import Frame

REPO = Path(__file__).resolve().parents[2]
SHIPPED_INT8 = REPO / "models" / "road-damage-1.1.0.json"


def make_keys(out_dir: Path) -> tuple[Path, Path]:
    """(private key file, public key file)."""
    return generate_keypair(out_dir)


def copy_package(
    manifest_path: Path,
    out_dir: Path,
    *,
    onnx_bytes: bytes | None = None,
    rehash: bool = True,
    key: Path | None = None,
    **manifest_changes: Any,
) -> Path:
    """Copy a package to ``out_dir`` (optionally with other model bytes or manifest fields),
    re-hash the model unless told not to, and sign the manifest with ``key`` if given."""
    manifest = load_manifest(manifest_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_out = out_dir / manifest.file
    if onnx_bytes is None:
        shutil.copyfile(manifest_path.parent / manifest.file, model_out)
    else:
        model_out.write_bytes(onnx_bytes)
    raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    if rehash:
        raw["sha256"], raw["file_bytes"] = sha256_of(model_out), model_out.stat().st_size
    raw.update(manifest_changes)
    version = raw.get("version", manifest.version)
    out_manifest = out_dir / f"{raw['name']}-{version}.json"
    out_manifest.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    if key is not None:
        sign_manifest(out_manifest, key)
    return out_manifest


def nan_model_bytes(model_path: Path, output_name: str = "heat") -> bytes:
    """The same network with its ``output_name`` output multiplied by NaN."""
    model = onnx.load(str(model_path))
    graph = model.graph
    hidden = f"{output_name}_before_nan"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == output_name:
                node.output[i] = hidden
    graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan_scale"))
    graph.node.append(helper.make_node("Mul", [hidden, "nan_scale"], [output_name]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


class GatedRecorder(Recorder):
    """A lockstep recorder that holds grading before frame ``gate_at`` so a test can switch the
    model mid-drive; ``reached`` is set there, ``release`` lets it go on."""

    def __init__(self, config: AppConfig, gate_at: int) -> None:
        super().__init__(config, lockstep=True)
        self.gate_at = gate_at
        self.reached, self.release = threading.Event(), threading.Event()

    def _consider(self, frame: Frame) -> None:
        if frame.seq == self.gate_at:
            self.reached.set()
            assert self.release.wait(60)
        super()._consider(frame)


def model_ids_by_seq(data_dir: Path) -> list[str]:
    """The model id of every stored finding, in the order the recorder made them."""
    with sqlite3.connect(data_dir / "outbox.sqlite3") as conn:
        findings = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM findings")]
    return [f["model_id"] for f in sorted(findings, key=lambda f: f["seq"])]
