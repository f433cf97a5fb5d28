"""The one reconnect backoff: the MQTT publisher and receiver, the GPS sources, the camera.

Each delay is min_s·2ⁿ after the n-th failure in a row, capped at max_s. With jitter (the
default, for network links) it is drawn between half and all of that, so a fleet whose
broker came back does not reconnect in lock-step; local devices back off exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_NS = 1_000_000_000


def _no_jitter() -> float:
    return 1.0


class Backoff:
    """Exponential backoff, with jitter unless ``jitter=False``."""

    def __init__(
        self,
        min_s: float,
        max_s: float,
        rand: Callable[[], float] = random.random,
        *,
        jitter: bool = True,
    ) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self._rand = rand if jitter else _no_jitter
        self._failures = 0
        self.not_before_ns = 0  # for readers that must not block: see failed()

    def next_delay_s(self) -> float:
        ceiling = min(self.max_s, self.min_s * (2 ** min(self._failures, 30)))
        self._failures += 1
        return ceiling * (0.5 + 0.5 * self._rand())

    def reset(self) -> None:
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def failed(self, now_ns: int) -> None:
        """A failed attempt at monotonic ``now_ns``: the next not before ``not_before_ns``."""
        self.not_before_ns = now_ns + int(self.next_delay_s() * _NS)

    def succeeded(self) -> None:
        self.reset()
