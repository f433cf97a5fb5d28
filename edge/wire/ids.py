"""Identifiers on the wire: the one vehicle-id pattern, finding ids (UUIDv7), the boot id.

The vehicle's config, the vehicle's MQTT topics, the office's receiver, store and console and
every JSON schema under ``edge/wire/schemas`` use ``VEHICLE_ID_PATTERN`` (a test checks the
schemas): letters, digits, '_' and '-', 1–64 long, starting with a letter or digit, so an id
is always a safe MQTT topic level and file-name part (no '.', no wildcard, no separator).

Finding ids are UUIDv7 (RFC 9562 section 5.7) so that they sort by creation time, which keeps
the outbox index and the office's tables append-mostly. Python 3.11's ``uuid`` has no uuid7.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from functools import cache
from pathlib import Path

VEHICLE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
VEHICLE_ID_RE = re.compile(f"^{VEHICLE_ID_PATTERN}$")
FINDING_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_vehicle_id(vehicle_id: str) -> str:
    """``vehicle_id`` if it matches the pattern, else ValueError saying what is allowed."""
    if not VEHICLE_ID_RE.match(vehicle_id):
        raise ValueError(
            f"vehicle id {vehicle_id!r} is not valid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return vehicle_id


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
