"""kill -9 of a recorder process anonymising and storing finding images at random moments:
the image folder never holds a file (complete, or a half-written temporary) whose plate or
face is still recognisable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import TESTS
from support.privacy import frames, sharpness

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

TESTS_DIR = TESTS  # where `support` is: the crash scripts import it

# The writer: the real outbox and privacy stage, storing findings with the plate and face
# photos as fast
# as it can; prints "stored" once the first image is in, so the kills land amid writes.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]  # + repo: not tests/edge
    import cv2
    from support.outbox import make_finding
    from support.privacy import frames
    from edge.outbox import Outbox
    from edge.config.privacy import PrivacyConfig
    from edge.privacy.stage import PrivacyStage

    photos = [cv2.imread(str(p)) for p, _ in frames()]
    outbox = Outbox.open(Path(sys.argv[1]), image_cap_bytes=2_000_000, min_free_bytes=0)
    stage = PrivacyStage(PrivacyConfig(queue_size=2), outbox, 85, lossless=True).start()
    i = 0
    while True:
        finding = make_finding(1 + i % 3, seq=i)
        outbox.add(finding, None)
        stage.submit(finding, photos[i % len(photos)])
        if i == 2:
            stage.wait_idle()
            print("stored", flush=True)
        i += 1
    """
)


def _decoded(data: bytes) -> np.ndarray | None:
    """What a viewer would show of a file, a truncated one included (libjpeg fills the
    missing rest with grey)."""
    if len(data) < 200:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_kill_9_mid_write_leaves_no_image_with_a_readable_plate_or_face(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    raw = [(cv2.imread(str(p)), boxes) for p, boxes in frames()]
    rng = random.Random(14)
    checked = 0
    for round_no in range(4):
        data_dir = tmp_path / f"data{round_no}"
        child = subprocess.Popen(
            [sys.executable, str(script), str(data_dir), str(TESTS_DIR)],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(TESTS_DIR.parent)},
        )  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "stored"
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere amid detecting and writing
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        files = [p for p in (data_dir / "images").iterdir() if p.is_file()]
        assert files, f"round {round_no}: nothing was written before the kill"
        for path in files:  # <id>.jpg and any .<id>.jpg.tmp the kill cut short
            image = _decoded(path.read_bytes())
            if image is None:
                continue
            # Which frame it is: the one it differs least from (outside a plate, it is the
            # same picture); then each of that frame's plates must be blurred.
            frame, boxes = min(
                raw, key=lambda fb: float(np.abs(fb[0] - image.astype(np.int16)).mean())
            )
            for box in boxes:
                assert sharpness(image, box) < 0.1 * sharpness(frame, box), (path, box)
            checked += 1
    assert checked >= 4
