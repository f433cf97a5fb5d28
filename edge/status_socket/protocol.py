"""The status socket's shared vocabulary: what a recorder offers, names, limits, config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from edge.status import Status

PROTOCOL_VERSION = 1
COMMANDS = ("mark", "pause", "resume", "status")
# Not one of edge.status.Alert's codes: only a remote screen can lose its recorder.
RECORDER_UNREACHABLE = "recorder_unreachable"
SOCKET_NAME = "recorder.sock"
MAX_LINE_BYTES = 4096  # commands are one word; anything longer is a confused client
MAX_PENDING_REPLIES = 64
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 107


class RecorderControl(Protocol):
    """What a screen needs from a recorder, in process or across the socket."""

    def status(self) -> Status: ...

    def mark_manual(self) -> str | None: ...

    def set_paused(self, paused: bool) -> None: ...


class RecorderUnreachable(ConnectionError):
    """No recorder answers at the socket path."""


def socket_path_for(data_dir: Path) -> Path:
    """Where a recorder whose data directory is ``data_dir`` listens."""
    return Path(data_dir) / SOCKET_NAME


def check_path_length(path: Path) -> None:
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH_BYTES:
        raise ValueError(
            f"status socket path is too long for a Unix socket "
            f"({len(os.fsencode(path))} > {_MAX_SOCKET_PATH_BYTES} bytes): {path}"
        )


def encode_line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()
