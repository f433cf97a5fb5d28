"""The recorder's side of the anonymiser's process (edge.privacy.worker says why it has one).

Waiting for the worker releases the GIL (select, pipe reads), so grading runs on meanwhile.
Any failure of the worker (it cannot load its models, it dies, it hangs) is a PrivacyError:
the stage withholds the image and the screen says why.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from typing import Any

import numpy as np

from edge.config.privacy import PrivacyConfig
from edge.privacy.anonymise import privacy_note
from edge.privacy.detect import PrivacyError, Region
from edge.privacy.worker import REPLY, REQUEST, read_exact


class AnonymiserProcess:
    """Starts the worker with ``config`` and anonymises frames through it."""

    start_timeout_s = 120.0  # loading the models; slow only on a very busy machine
    timeout_s = 60.0  # one frame takes well under a second

    def __init__(self, config: PrivacyConfig) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(config.threads), "OMP_WAIT_POLICY": "PASSIVE"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edge.privacy.worker", config.model_dump_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        hello = self._hello()
        if not hello.get("ok"):
            self.close()
            raise PrivacyError(str(hello.get("error", "the anonymiser's process did not start")))
        self.by = str(hello["by"])
        self._broken = False  # a pipe error or a hang: the worker is not to be trusted again

    def _wait(self, timeout_s: float) -> None:
        assert self._proc.stdout is not None
        if not select.select([self._proc.stdout], [], [], timeout_s)[0]:
            raise PrivacyError(f"the anonymiser's process gave no answer in {timeout_s:.0f} s")

    def _hello(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        try:
            self._wait(self.start_timeout_s)
            hello = json.loads(self._proc.stdout.readline() or b"{}")
        except (PrivacyError, ValueError) as exc:
            return {"error": str(exc)}
        return hello if isinstance(hello, dict) else {}

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None and not self._broken

    def note(self, regions: int) -> str:
        return privacy_note(anonymised=True, by=self.by, regions=regions)

    def run(self, image: np.ndarray, quality: int) -> tuple[bytes, list[Region], float]:
        """The anonymised JPEG, the regions blurred and the detection time (ms)."""
        inp, out = self._proc.stdin, self._proc.stdout
        assert inp is not None and out is not None
        h, w = image.shape[:2]
        try:
            inp.write(REQUEST.pack(h, w, quality) + np.ascontiguousarray(image).tobytes())
            inp.flush()
            self._wait(self.timeout_s)
            head = read_exact(out, REPLY.size)
            sizes = REPLY.unpack(head) if head else None
            body = read_exact(out, sum(sizes)) if sizes else None
        except (OSError, ValueError, PrivacyError) as exc:
            self._broken = True
            raise PrivacyError(f"the anonymiser's process failed: {exc}") from exc
        if sizes is None or body is None:
            self._broken = True
            raise PrivacyError(f"the anonymiser's process ended (exit {self._proc.poll()})")
        meta = json.loads(body[sizes[0] :])
        if "error" in meta:
            raise PrivacyError(str(meta["error"]))
        regions = [
            Region(str(kind), int(x0), int(y0), int(x1), int(y1), float(score))
            for kind, x0, y0, x1, y1, score in meta["regions"]
        ]
        return body[: sizes[0]], regions, float(meta["detect_ms"])

    def close(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # hung: it gets no more say
            self._proc.kill()
            self._proc.wait()
