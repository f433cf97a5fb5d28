"""Let a driver screen attach to a running recorder over a local Unix socket.

The recorder runs a :class:`StatusServer`; a screen in another process uses
:class:`RemoteRecorder`, which looks like the recorder itself (``RecorderControl``). Because
the screen lives in its own process, closing or killing it never touches recording.

Wire format, one UTF-8 line per message:

- server → client: ``{"type": "hello", "protocol": 1}`` once, then
  ``{"type": "status", "status": {...}}`` (``Status.to_json``) a few times a second, and
  ``{"type": "reply", "cmd": ..., "req": ..., "ok": ..., ...}`` for each command;
- client → server: ``mark`` | ``pause`` | ``resume`` | ``status`` as a plain word (handy with
  ``socat - UNIX-CONNECT:recorder.sock``), or ``{"cmd": "mark", "req": 7}`` to match replies.
"""

from edge.status_socket.client import RemoteRecorder
from edge.status_socket.protocol import (
    COMMANDS,
    PROTOCOL_VERSION,
    RECORDER_UNREACHABLE,
    SOCKET_NAME,
    RecorderControl,
    RecorderUnreachable,
    socket_path_for,
)
from edge.status_socket.server import StatusServer

__all__ = [
    "COMMANDS",
    "PROTOCOL_VERSION",
    "RECORDER_UNREACHABLE",
    "SOCKET_NAME",
    "RecorderControl",
    "RecorderUnreachable",
    "RemoteRecorder",
    "StatusServer",
    "socket_path_for",
]
