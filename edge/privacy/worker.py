"""The anonymiser's own process (``python -m edge.privacy.worker CONFIG_JSON``).

Detecting takes a few hundred milliseconds of CPU per image, and yuface's face detector holds
Python's GIL while it runs: inside the recorder that would stall grading, capture and the
screen. In a process of its own, at a lower priority (nice +10), the anonymiser holds nothing
of theirs and takes only the CPU that the grader leaves. Only anonymised JPEG bytes come back.

Protocol on stdin/stdout, little-endian. First the worker writes one JSON line:
{"ok": true, "by": ...} or {"ok": false, "error": ...}. Then per image the parent sends
``<III`` height, width, JPEG quality and the BGR bytes; the worker answers ``<II`` the JPEG's
length and the length of a JSON object {"regions": [[kind, x0, y0, x1, y1, score], ...],
"detect_ms": ...} (or {"error": ...} with no JPEG), then both.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from typing import IO

import numpy as np

REQUEST = struct.Struct("<III")
REPLY = struct.Struct("<II")
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


def _hello(out: IO[bytes], doc: dict[str, object]) -> None:
    out.write(json.dumps(doc).encode() + b"\n")
    out.flush()


def serve(config_json: str, inp: IO[bytes], out: IO[bytes]) -> int:
    # Imported here: the parent's side of this module must stay light.
    from edge.config.privacy import PrivacyConfig
    from edge.privacy.anonymise import Anonymiser, encode_jpeg
    from edge.privacy.detect import PrivacyError

    try:
        anonymiser = Anonymiser(PrivacyConfig.model_validate_json(config_json))
    except PrivacyError as exc:
        _hello(out, {"ok": False, "error": str(exc)})
        return 1
    _hello(out, {"ok": True, "by": anonymiser.by})
    while (head := read_exact(inp, REQUEST.size)) is not None:
        h, w, quality = REQUEST.unpack(head)
        data = read_exact(inp, h * w * 3)
        if data is None:
            break
        try:
            result = anonymiser.anonymise(np.frombuffer(data, np.uint8).reshape(h, w, 3))
        except PrivacyError as exc:  # the parent withholds this image and shows why
            meta = json.dumps({"error": str(exc)}).encode()
            out.write(REPLY.pack(0, len(meta)) + meta)
            out.flush()
            continue
        jpeg = encode_jpeg(result.image, quality)
        regions = [[r.kind, r.x0_px, r.y0_px, r.x1_px, r.y1_px, r.score] for r in result.regions]
        meta = json.dumps({"regions": regions, "detect_ms": result.detect_ms}).encode()
        out.write(REPLY.pack(len(jpeg), len(meta)) + jpeg + meta)
        out.flush()
    anonymiser.close()
    return 0  # the recorder closed the pipe, or died


def main() -> int:
    with contextlib.suppress(OSError):  # where it is not allowed: the same priority
        os.nice(NICE)
    return serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
