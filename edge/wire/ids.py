"""Identifiers that never change: finding ids (UUIDv7) and this machine's boot id.

Finding ids are UUIDv7 (RFC 9562 section 5.7) so that they sort by creation time, which keeps
the outbox index and the office's tables append-mostly. Python 3.11's ``uuid`` has no uuid7.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from functools import cache
from pathlib import Path

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

_COUNTER_BITS = 12  # rand_a carries the counter (RFC 9562 section 6.2, method 1)
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
# A fresh millisecond starts its counter at a random value below this, so that ids from the
# same millisecond stay unguessable yet leave room for thousands of increments.
_COUNTER_SEED_LIMIT = 1 << (_COUNTER_BITS - 1)


class _Uuid7Generator:
    """Strictly increasing UUIDv7s within a process, even when the wall clock steps back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def next(self) -> uuid.UUID:
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") % _COUNTER_SEED_LIMIT
            else:
                # Same millisecond, or the clock went back: keep the last timestamp and count
                # on, borrowing the next millisecond when the counter runs out.
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76  # version
        value |= counter << 64
        value |= 0b10 << 62  # RFC 4122/9562 variant
        value |= rand_b
        return uuid.UUID(int=value)


_generator = _Uuid7Generator()


def new_finding_id() -> str:
    """A new UUIDv7 as its canonical lower-case string; later calls sort after earlier ones."""
    return str(_generator.next())


def uuid7_unix_ms(value: str) -> int:
    """The Unix time in milliseconds stored in a UUIDv7 string."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"not a UUIDv7: {value!r}")
    return parsed.int >> 80


@cache
def boot_id() -> str:
    """The kernel's id for this boot; a random id per process where the kernel has none.

    The office uses (vehicle id, boot id, seq) to spot gaps in a vehicle's sequence numbers,
    which restart at every boot.
    """
    try:
        text = _BOOT_ID_FILE.read_text(encoding="ascii").strip()
        return str(uuid.UUID(text))
    except (OSError, ValueError):
        return str(uuid.uuid4())
