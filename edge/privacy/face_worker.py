"""The face detector's own process (``python -m edge.privacy.face_worker``).

yuface's native detector holds Python's GIL while it runs (about 100 ms a frame here): inside
the recorder it would stall grading, capture and the screen for as long. In a process of its
own it holds nothing of theirs, and it runs at a lower priority so that the grader comes
first. The protocol on stdin/stdout, little-endian: the parent sends ``<II`` height, width and
the BGR bytes; the worker answers ``<I`` n and n rows of five int32 (confidence 0..100, x, y,
w, h). First it writes one JSON line: {"ok": true, "version": ...} or {"ok": false, "error"}.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from importlib import metadata
from typing import IO

import numpy as np

HEADER = struct.Struct("<II")
COUNT = struct.Struct("<I")
NICE = 10


def read_exact(stream: IO[bytes], n: int) -> bytes | None:
    """``n`` bytes, or None at the end of the stream."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    try:
        import yuface
    except ImportError as exc:
        out.write(json.dumps({"ok": False, "error": str(exc)}).encode() + b"\n")
        out.flush()
        return 1
    out.write(json.dumps({"ok": True, "version": metadata.version("yuface")}).encode() + b"\n")
    out.flush()
    while (head := read_exact(inp, HEADER.size)) is not None:
        h, w = HEADER.unpack(head)
        data = read_exact(inp, h * w * 3)
        if data is None:
            return 0
        image = np.frombuffer(data, np.uint8).reshape(h, w, 3)
        confs, boxes, _ = yuface.detect(image, conf=0.0)
        rows = np.column_stack([confs, boxes]).astype("<i4") if len(confs) else np.zeros((0, 5))
        out.write(COUNT.pack(len(rows)) + rows.astype("<i4").tobytes())
        out.flush()
    return 0  # the recorder closed the pipe, or died


def main() -> int:
    with contextlib.suppress(OSError):  # not allowed here: run at the same priority
        os.nice(NICE)
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
