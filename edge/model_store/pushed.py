"""Read one pushed model message safely: size first, then schema, then the signed manifest.

The message is an unsigned envelope around a signed package. Nothing in the envelope decides
anything: the package's id comes from its manifest (which `ModelStore.install` verifies
against the trusted keys), and an envelope whose ``model_id`` or ``model_file`` disagrees with
that manifest is refused as tampered. A message too big is refused before it is parsed, so a
huge push cannot multiply the vehicle's memory on its way to a refusal.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.grading.manifest import ModelPackageError, load_manifest
from edge.wire.validate import validator

_MANIFEST_NAME = "pushed.json"  # not the message's model_id: that is unsigned
_SIGNATURE_NAME = "pushed.sig"


@dataclass(frozen=True, slots=True)
class PushedPackage:
    manifest_path: Path
    model_id: str  # from the manifest, still to be verified by the store
    activate_allowed: bool  # the envelope may hold activation back, never force it


def unpack(payload: bytes, into: Path, *, max_bytes: int) -> PushedPackage:
    """Write a pushed package into ``into``; raises ModelPackageError saying what is wrong."""
    if len(payload) > max_bytes:
        raise ModelPackageError(
            f"pushed model message is {len(payload):,} bytes, over the limit of {max_bytes:,} "
            "(mqtt.model_push_max_mb); refused unread"
        )
    message = _parsed(payload)
    try:
        manifest_path = into / _MANIFEST_NAME
        manifest_path.write_bytes(base64.b64decode(message["manifest_b64"], validate=True))
        into.joinpath(_SIGNATURE_NAME).write_bytes(
            base64.b64decode(message["signature_b64"], validate=True)
        )
        manifest = load_manifest(manifest_path)
        if manifest.model_id != message["model_id"] or manifest.file != message["model_file"]:
            raise ModelPackageError(
                f"pushed model message names {message['model_id']} ({message['model_file']}) "
                f"but its signed manifest is {manifest.model_id} ({manifest.file}); refused"
            )
        if Path(manifest.file).name != manifest.file or manifest.file in (
            _MANIFEST_NAME,
            _SIGNATURE_NAME,
        ):
            raise ModelPackageError(f"manifest file {manifest.file!r} is not a plain model name")
        into.joinpath(manifest.file).write_bytes(
            base64.b64decode(message["model_b64"], validate=True)
        )
    except (ValueError, binascii.Error) as exc:
        raise ModelPackageError(f"pushed model message is malformed: {exc}") from exc
    return PushedPackage(manifest_path, manifest.model_id, bool(message.get("activate", True)))


def _parsed(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ModelPackageError(f"pushed model message is not JSON: {exc}") from exc
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:200]}"
        for e in validator("model-push").iter_errors(message)
    ]
    if problems:
        shown = "; ".join(problems[:3]) + ("; …" if len(problems) > 3 else "")
        raise ModelPackageError(f"pushed model message breaks roadpatrol.model-push v1: {shown}")
    assert isinstance(message, dict)  # the schema says "type": "object"
    return message
