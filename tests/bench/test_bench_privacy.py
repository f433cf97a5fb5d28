"""What privacy costs. Not part of the default run.

    nice python -m pytest tests/bench/test_bench_privacy.py -s -p no:cacheprovider

Per stored finding image at 1280×720 (a real plate frame scaled up): detect + blur + JPEG
against the JPEG alone (privacy off). Pipeline: the 1280×720 MP4 drive of
test_bench_pipeline, every frame graded (lockstep), privacy on and off interleaved in the
same run. With privacy on the stage keeps its live behaviour (bounded, never blocking the
recorder: images it cannot keep up with are dropped and counted), as on a vehicle.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared fixtures
from test_bench_pipeline import FRAMES, video_720p  # noqa: F401  (a fixture)

from edge.config.loader import AppConfig, demo_config
from edge.config.privacy import PrivacyConfig
from edge.privacy.anonymise import Anonymiser, encode_jpeg
from edge.privacy.stage import PrivacyStage

from support.privacy import frames


@pytest.fixture(scope="module")
def frame_720p():  # type: ignore[no-untyped-def]
    return cv2.resize(cv2.imread(str(frames("plate")[0][0])), (1280, 720))


def test_cost_per_image_privacy_on(benchmark, frame_720p) -> None:  # type: ignore[no-untyped-def]
    anonymiser = Anonymiser(PrivacyConfig())
    jpeg = benchmark(lambda: encode_jpeg(anonymiser.anonymise(frame_720p).image, 85))
    assert jpeg[:3] == b"\xff\xd8\xff"


def test_cost_per_image_privacy_off(benchmark, frame_720p) -> None:  # type: ignore[no-untyped-def]
    jpeg = benchmark(lambda: encode_jpeg(frame_720p, 85))
    assert jpeg[:3] == b"\xff\xd8\xff"


def _pipeline(video: Path, data_dir: Path, privacy: bool) -> dict[str, float]:
    from edge.recording.recorder import Recorder

    base = demo_config(data_dir, fast=True)
    config = AppConfig.model_validate(
        {
            **base.model_dump(),
            "camera": {**base.camera.model_dump(), "source": "file", "path": video, "fps": 10.0},
            "sampling": {**base.sampling.model_dump(), "sample_every_m": 0.01},
            "privacy": {"enabled": privacy},
        }
    )
    recorder = Recorder(config, lockstep=True)
    if isinstance(recorder.images, PrivacyStage):
        recorder.images.lossless = False  # as on a vehicle: never hold the recorder up
    started = time.perf_counter()
    recorder.start()
    assert recorder.wait_ended(timeout_s=600)
    elapsed = time.perf_counter() - started
    status = recorder.status()
    recorder.stop()
    stored = sum(status.findings_by_grade[g] for g in "123")
    return {
        "fps": status.model.graded / elapsed,
        "findings": stored,
        "images": status.privacy.stored,
        "withheld": status.privacy.withheld,
    }


def test_pipeline_privacy_on_vs_off_720p(video_720p: Path, tmp_path: Path) -> None:  # noqa: F811
    rounds = int(os.environ.get("ROADPATROL_BENCH_ROUNDS", "3"))
    on, off = [], []
    for r in range(rounds):  # interleaved, so drift on a busy machine hits both
        off.append(_pipeline(video_720p, tmp_path / f"off{r}", privacy=False))
        on.append(_pipeline(video_720p, tmp_path / f"on{r}", privacy=True))
    figures = {
        "frames": len(FRAMES),
        "fps_privacy_off": round(statistics.median(x["fps"] for x in off), 1),
        "fps_privacy_on": round(statistics.median(x["fps"] for x in on), 1),
        "findings_per_run": [x["findings"] for x in on],
        "images_anonymised_per_run": [x["images"] for x in on],
        "images_withheld_per_run": [x["withheld"] for x in on],
        "rounds": rounds,
    }
    figures["ratio"] = round(figures["fps_privacy_on"] / figures["fps_privacy_off"], 3)
    print("\nPRIVACY", json.dumps(figures))
    assert figures["fps_privacy_on"] > 0
