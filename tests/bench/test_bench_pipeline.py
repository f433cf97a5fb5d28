"""Pipeline throughput and recorder memory. Not part of the default run.

    nice python -m pytest tests/bench/test_bench_pipeline.py -s -p no:cacheprovider
    ROADPATROL_BENCH_RSS_MINUTES=20 python -m pytest tests/bench/test_bench_pipeline.py -s -k rss

Throughput: 1280×720 frames (the demo's real road photos scaled to a dashboard camera's
size, in an MP4 written here) decoded by OpenCV, graded by the shipped default (INT8) model,
geotagged and committed to the outbox, every frame (lockstep); ROADPATROL_BENCH_MODEL=PKG.json
measures another package instead (a candidate not yet the default). Baselines in the same run:
decoding alone, and decode + model alone, so the figures are ratios on this noisy machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from edge.config.loader import AppConfig, demo_config
from edge.grading.grader import Grader
from edge.model_store.shipped import default_model_package

REPO = Path(__file__).resolve().parents[2]
FRAMES = sorted((REPO / "edge" / "demo" / "frames").glob("*.jpg"))


def _bench_model() -> Path:
    return Path(os.environ.get("ROADPATROL_BENCH_MODEL") or default_model_package())


@pytest.fixture(scope="module")
def video_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "drive720p.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (1280, 720))
    for p in FRAMES:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        writer.write(cv2.resize(image, (1280, 720), interpolation=cv2.INTER_LINEAR))
    writer.release()
    return path


def _decode_all(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _decode_and_grade(video: Path, grader: Grader) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        grader.detect(image)
        n += 1
    cap.release()
    return n


def _pipeline(video: Path, data_dir: Path) -> tuple[int, float]:
    from edge.recording.recorder import Recorder

    base = demo_config(data_dir, fast=True)
    config = AppConfig.model_validate(
        {
            **base.model_dump(),
            "camera": {**base.camera.model_dump(), "source": "file", "path": video, "fps": 10.0},
            "sampling": {**base.sampling.model_dump(), "sample_every_m": 0.01},
            # Without the anonymiser, as before it existed: test_bench_privacy measures it.
            "privacy": {"enabled": False},
            "model": {**base.model.model_dump(), "package": _bench_model()},
        }
    )
    recorder = Recorder(config, lockstep=True)
    started = time.perf_counter()
    recorder.start()
    assert recorder.wait_ended(timeout_s=600)
    elapsed = time.perf_counter() - started
    graded = recorder.status().model.graded
    recorder.stop()
    return graded, elapsed


def test_pipeline_throughput_720p(video_720p: Path, tmp_path: Path) -> None:
    grader = Grader(_bench_model())
    rounds = int(os.environ.get("ROADPATROL_BENCH_ROUNDS", "3"))
    decode, model, pipe = [], [], []
    for r in range(rounds):  # interleaved, so drift on a busy machine hits all three
        t = time.perf_counter()
        n = _decode_all(video_720p)
        decode.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        n = _decode_and_grade(video_720p, grader)
        model.append(n / (time.perf_counter() - t))
        graded, elapsed = _pipeline(video_720p, tmp_path / f"round{r}")
        assert graded == len(FRAMES)
        pipe.append(graded / elapsed)
    figures = {
        "model": grader.model_id,
        "decode_fps": round(statistics.median(decode), 1),
        "decode_grade_fps": round(statistics.median(model), 1),
        "pipeline_fps": round(statistics.median(pipe), 1),
        "pipeline_over_decode_grade": round(statistics.median(pipe) / statistics.median(model), 3),
        "rounds": rounds,
    }
    print("\nPIPELINE", json.dumps(figures))
    assert figures["pipeline_fps"] > 0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


RSS_MINUTES = float(os.environ.get("ROADPATROL_BENCH_RSS_MINUTES", "3"))


@pytest.mark.timeout(int(RSS_MINUTES * 60 + 180))
def test_recorder_peak_rss_over_a_long_replay(tmp_path: Path) -> None:
    minutes = RSS_MINUTES
    demo = REPO / "edge" / "demo"
    cfg = tmp_path / "rss.toml"
    cfg.write_text(
        f'[vehicle]\nvehicle_id = "rss"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[camera]\nsource = "folder"\npath = "{demo / "frames"}"\nfps = 10.0\nloop = true\n'
        f'[gps]\nsource = "nmea_file"\nnmea_file = "{demo / "chiba_drive.nmea"}"\n'
        "[sampling]\nfallback_interval_s = 0.1\n"
    )
    exe = str(Path(sys.executable).with_name("roadpatrol"))
    proc = subprocess.Popen(
        [exe, "run", "--headless", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < minutes * 60:
            time.sleep(5)
            assert proc.poll() is None
            samples.append((time.monotonic() - started, _rss_kb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    peak = max(kb for _, kb in samples)
    first_minute = max(kb for t, kb in samples if t <= 60)
    last_quarter = [kb for t, kb in samples if t >= 0.75 * minutes * 60]
    figures = {
        "minutes": minutes,
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_after_1_min_mb": round(first_minute / 1024, 1),
        "rss_last_quarter_max_mb": round(max(last_quarter) / 1024, 1),
        "growth_after_first_minute_mb": round((max(last_quarter) - first_minute) / 1024, 1),
    }
    print("\nRSS", json.dumps(figures))
    assert peak > 0
