"""What a local client may send: bounded commands and a mark rate a driver's hand can reach.

The socket is open to every process of the recorder's group, so a confused or hostile script
must not be able to crash the server (deeply nested JSON), fill the outbox (marks in a loop)
or crowd out the real screen; see ``StatusServer`` for the connection side.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

# A command is a word or a tiny object; anything longer is refused before it is parsed.
MAX_COMMAND_BYTES = 256
# `{"cmd": "mark", "req": 7}` nests one level; a few more leave room, never a recursion.
MAX_COMMAND_NESTING = 4
# A `req` is echoed back to the client; only small scalars are worth echoing.
_MAX_REQ_CHARS = 64


@dataclass
class MarkBucket:
    """A token bucket: ``burst`` marks at once, then one every ``refill_s`` seconds.

    A driver presses the mark key a few times for a cluster of potholes; a script writing
    ``mark`` 800 times gets ``burst`` findings and refusals for the rest.
    """

    burst: int = 3
    refill_s: float = 1.0
    tokens: float = -1.0
    stamp_mono: float = 0.0

    def take(self, now_mono: float | None = None) -> bool:
        now = time.monotonic() if now_mono is None else now_mono
        if self.tokens < 0:
            self.tokens, self.stamp_mono = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp_mono) / self.refill_s)
        self.stamp_mono = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def parse_command(raw: bytes) -> tuple[str | None, Any]:
    """``(command, req)`` from one line; an unreadable line gives ``<invalid: why>``.

    Never raises: size and nesting are checked before ``json.loads`` sees the text, and
    anything it still throws is turned into a refusal, not a dead server.
    """
    if len(raw) > MAX_COMMAND_BYTES:
        return f"<invalid: command longer than {MAX_COMMAND_BYTES} bytes>", None
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None
    if not text.startswith(("{", "[")):
        return text.lower(), None
    if _nesting(text) > MAX_COMMAND_NESTING:
        return f"<invalid: nested deeper than {MAX_COMMAND_NESTING}>", None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"<invalid JSON: {exc.msg}>", None
    except (ValueError, RecursionError) as exc:
        return f"<invalid JSON: {type(exc).__name__}>", None
    if not isinstance(obj, dict):
        return "<invalid: not an object>", None
    cmd, req = obj.get("cmd", ""), obj.get("req")
    if not isinstance(cmd, str):
        return "<invalid: cmd is not a string>", None
    if not (req is None or isinstance(req, (int, str))) or len(str(req)) > _MAX_REQ_CHARS:
        return cmd.strip().lower(), "<invalid req>"
    return cmd.strip().lower(), req


def _nesting(text: str) -> int:
    """The deepest bracket nesting, counting brackets inside strings too (over-counting only
    makes the check stricter, and a real command has no brackets in its strings)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
