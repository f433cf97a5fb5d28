"""Schema tags and JSON Schema validation of every message (``edge/wire/schemas/``).

Every JSON payload starts with ``schema: {name, version}``; its JSON Schema is committed in
``edge/wire/schemas/<kind>.schema.json``. Images are raw JPEG bytes whose MQTT 5 user
properties carry the same identifying fields (schema, finding id, vehicle id, boot id, seq).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

FINDING = ("roadpatrol.finding", 1)
TRACK = ("roadpatrol.track", 1)
STATUS = ("roadpatrol.status", 2)  # v2: last_model_update
RECEIPT = ("roadpatrol.receipt", 1)
MODEL_PUSH = ("roadpatrol.model-push", 1)
MODEL_RESULT = ("roadpatrol.model-result", 1)
IMAGE_SCHEMA_TAG = "roadpatrol.image/2"  # v2: anonymised, anonymiser (optional)
IMAGE_SCHEMA_TAGS = ("roadpatrol.image/1", IMAGE_SCHEMA_TAG)  # what the office validates
SCHEMA_KINDS = ("finding", "image", "track", "status", "receipt", "model-push", "model-result")


def schema_tag(schema: tuple[str, int]) -> dict[str, Any]:
    """The ``schema`` member every JSON message starts with."""
    return {"name": schema[0], "version": schema[1]}


@cache
def load_schema(kind: str) -> dict[str, Any]:
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"no payload schema {kind!r}; known: {', '.join(SCHEMA_KINDS)}")
    schemas = resources.files("edge.wire.schemas")
    schema: dict[str, Any] = json.loads(schemas.joinpath(f"{kind}.schema.json").read_text("utf-8"))
    return schema


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(kind: str, document: Any) -> list[str]:
    """Every way ``document`` breaks the ``kind`` schema, as 'path: message' lines."""
    found = []
    for error in sorted(validator(kind).iter_errors(document), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        found.append(f"{where}: {message}")
    return found
