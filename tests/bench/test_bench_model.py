"""The shipped default's latency: INT8 against its FP32 export, against the package it was
adapted from, and against 1.1.0 (issue 9's reference), interleaved in one run on real frames
(2 threads).

    nice python -m pytest tests/bench/test_bench_model.py -s -p no:cacheprovider

Two figures per model: the onnxruntime session alone, and the whole per-frame cost the
vehicle pays (resize + normalise + session + decode), both as medians over the same frames.
The packages follow the shipped default (its manifest names its FP32 export and its base), so
the bench times what the vehicles run, not a version written here.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import cv2

from edge.grading.grader import Grader
from edge.grading.manifest import load_manifest
from edge.grading.preprocess import preprocess
from edge.model_store.shipped import default_model_package

REPO = Path(__file__).resolve().parents[2]
FRAMES = sorted((REPO / "edge" / "demo" / "frames").glob("*.jpg"))
INT8 = default_model_package(REPO / "models")
_TRAINING = load_manifest(INT8).training or {}
FP32 = INT8.parent / f"{_TRAINING['fp32_package']}.json"
# The package the default was adapted from: the same network before `model adapt`.
BASE_INT8 = INT8.parent / f"{_TRAINING['adapted_from']['package']}.json"
REFERENCE_INT8 = REPO / "models" / "road-damage-1.1.0.json"  # issue 9's latency reference
BLOCK = 20  # frames per model before switching to the other


def interleaved(packages: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Median session and per-frame milliseconds of each package, 3 passes over the frames."""
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in FRAMES]
    graders = {name: Grader(path, threads=2) for name, path in packages.items()}
    session_ms: dict[str, list[float]] = {k: [] for k in graders}
    detect_ms: dict[str, list[float]] = {k: [] for k in graders}
    for g in graders.values():  # warm-up
        for image in images[:10]:
            g.detect(image)
    blocks = [images[i : i + BLOCK] for i in range(0, len(images), BLOCK)]
    for _ in range(3):
        for block in blocks:
            # Interleaved by blocks, so drift hits both alike. Not frame by frame: each
            # session's idle workers spin for a while after a run and would steal the two
            # cores from the other model's run (a vehicle runs one model at a time).
            for name, g in graders.items():
                for image in block:
                    tensor = preprocess(image, g.manifest.input)
                    started = time.perf_counter()
                    g.session.run(None, {g.manifest.input.input_name: tensor})
                    session_ms[name].append((time.perf_counter() - started) * 1000)
                    detect_ms[name].append(g.detect(image)[1])
    return {
        k: {
            "session_ms": round(statistics.median(session_ms[k]), 2),
            "frame_ms": round(statistics.median(detect_ms[k]), 2),
        }
        for k in graders
    }


def test_int8_vs_fp32_latency() -> None:
    med = interleaved({"fp32": FP32, "int8": INT8})
    figures = {
        **med,
        "ratio_session_int8_over_fp32": round(
            med["int8"]["session_ms"] / med["fp32"]["session_ms"], 3
        ),
        "ratio_frame_int8_over_fp32": round(med["int8"]["frame_ms"] / med["fp32"]["frame_ms"], 3),
        "frames": len(FRAMES) * 3,
    }
    print("\nMODEL", json.dumps(figures))
    assert med["int8"]["frame_ms"] > 0


def test_adapted_int8_vs_its_base_and_the_reference() -> None:
    """Adapting costs no time: the default (same network, same quantisation recipe) against
    the package it was adapted from must stay within a ratio of 1.10. Against 1.1.0 the ratio
    is printed: a larger input (issue 13) buys accuracy with the speed headroom."""
    med = interleaved({"reference": REFERENCE_INT8, "base": BASE_INT8, "adapted": INT8})
    ratios = {
        over: {
            key: round(med["adapted"][key] / med[over][key], 3)
            for key in ("session_ms", "frame_ms")
        }
        for over in ("base", "reference")
    }
    print(
        "\nADAPTED",
        json.dumps({"packages": [INT8.name, BASE_INT8.name, REFERENCE_INT8.name], **med,
                    "ratio_adapted_over": ratios}),
    )  # fmt: skip
    assert ratios["base"]["session_ms"] <= 1.10 and ratios["base"]["frame_ms"] <= 1.10
