"""`roadpatrol office push-model`: a signed model package as one retained MQTT message.

Retained, so a vehicle that is offline gets it when it next connects. The office does not
need the vehicles' trust settings: each vehicle verifies hash, signature, shapes and outputs
itself before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.config.mqtt import MqttConfig
from edge.errors import UsageError
from edge.grading.manifest import ModelPackageError, load_manifest, manifest_path_for, verify_file
from edge.model_store.signing import signature_path_for
from edge.wire.ids import VEHICLE_ID_RE
from edge.wire.topics import model_topic
from edge.wire.validate import MODEL_PUSH
from sync.cli_common import add_connection_options, mqtt_config_from_args
from sync.mqtt_client import connect, make_client


def push_payload(package: Path, *, activate: bool) -> bytes:
    """The package's manifest (byte for byte), signature and model file, as JSON.

    ``activate`` False holds activation back; True leaves the decision to the signed
    manifest's ``activate_on_arrival`` (the message is unsigned, so it cannot force one).

    Raises ModelPackageError when the package is unsigned or its file does not match.
    """
    manifest_path = manifest_path_for(package)
    manifest = load_manifest(manifest_path)
    model_path = verify_file(manifest, manifest_path)
    sig_path = signature_path_for(manifest_path)
    if not sig_path.is_file():
        raise ModelPackageError(f"{sig_path}: package is unsigned; run `roadpatrol model sign`")
    message: dict[str, Any] = {
        "schema": MODEL_PUSH[0],
        "schema_version": MODEL_PUSH[1],
        "model_id": manifest.model_id,
        "activate": activate,
        "manifest_b64": base64.b64encode(manifest_path.read_bytes()).decode(),
        "signature_b64": base64.b64encode(sig_path.read_bytes()).decode(),
        "model_file": manifest.file,
        "model_b64": base64.b64encode(model_path.read_bytes()).decode(),
    }
    return json.dumps(message).encode()


def publish_retained(cfg: MqttConfig, topic: str, payload: bytes, timeout_s: float) -> None:
    """Publish with QoS 1 and the retain flag; return once the broker has acknowledged it."""
    client = make_client(cfg, f"roadpatrol-push-{uuid.uuid4().hex[:12]}", clean_start=True)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()
    connect(client, cfg, clean_start=True)
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise TimeoutError(f"{cfg.host}:{cfg.port}: no CONNACK within {timeout_s} s")
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout_s)
        if not info.is_published() or info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TimeoutError(f"{topic}: broker did not acknowledge within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()


def add_push_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    push = sub.add_parser("push-model", help="send a signed model package to vehicles")
    push.add_argument("package", type=Path, help="package .json or .onnx, with its .sig")
    target = push.add_mutually_exclusive_group(required=True)
    target.add_argument("--vehicle", metavar="ID", help="one vehicle")
    target.add_argument("--fleet", action="store_true", help="every vehicle")
    push.add_argument(
        "--no-activate",
        action="store_true",
        help="install only, even if the signed manifest says activate_on_arrival; "
        "activate later with `roadpatrol model activate`",
    )
    push.add_argument("--timeout-s", type=float, default=30.0)
    add_connection_options(push, broker_required=True)
    push.set_defaults(handler=_push)


def _push(args: argparse.Namespace) -> int:
    cfg = mqtt_config_from_args(args)
    if args.vehicle is not None and not VEHICLE_ID_RE.match(args.vehicle):
        raise UsageError(f"--vehicle {args.vehicle!r}: not a vehicle id")
    topic = model_topic(cfg.topic_prefix, None if args.fleet else args.vehicle)
    try:
        payload = push_payload(args.package, activate=not args.no_activate)
        on_arrival = load_manifest(args.package).activate_on_arrival
        publish_retained(cfg, topic, payload, args.timeout_s)
    except (ModelPackageError, OSError, TimeoutError) as exc:
        print(f"roadpatrol office push-model: {exc}", file=sys.stderr)
        return 1
    if args.no_activate or not on_arrival:
        why = "--no-activate" if args.no_activate else "manifest: activate_on_arrival false"
        then = f"install only ({why})"
    else:
        then = "install and activate"
    print(f"{topic}: {len(payload)} bytes, retained; vehicles will {then}")
    return 0
