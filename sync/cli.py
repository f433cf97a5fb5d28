"""`roadpatrol sync drain`: send the outbox's backlog to the broker and exit."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from edge.config.loader import load_config
from edge.config.mqtt import MqttConfig
from edge.errors import UsageError
from edge.outbox import Outbox, OutboxConfig, OutboxError
from edge.outbox.identity import vehicle_id_in_outbox
from edge.outbox.schema import DB_NAME
from edge.wire.ids import check_vehicle_id
from sync.cli_common import add_connection_options, mqtt_config_from_args
from sync.drain import drain

_NO_CAP = 1 << 60  # a drain must never evict images the recorder's own cap would keep


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = subparsers.add_parser("sync", help="store-and-forward to the office broker")
    sub = sync.add_subparsers(dest="sync_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "drain",
        help="send the outbox's backlog, exit when the office has it all or after --timeout",
        description="Exit status 0 when the office has receipted every finding and image "
        "(and the broker acknowledged every track point), 1 when records remain or await "
        "the office's receipt.",
    )
    p.add_argument("--config", type=Path, help="the recorder's config file (TOML)")
    p.add_argument("--data-dir", type=Path, help="data directory holding the outbox")
    p.add_argument("--vehicle-id", help="vehicle id (default: from the config or the outbox)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after S seconds")
    p.add_argument("--inflight-window", type=int, help="records in flight at once")
    p.add_argument(
        "--no-wait-receipts",
        action="store_true",
        help="exit 0 once the broker acknowledged everything, without waiting for the "
        "office's receipts (an office without receipts yet, benchmarks); the records still "
        "await their receipts and are sent again by the recorder without one",
    )
    p.add_argument(
        "--receipt-timeout",
        type=float,
        help="send again what the office has not receipted after S seconds "
        "(default: mqtt.receipt_timeout_s)",
    )
    p.add_argument("--json", action="store_true", help='print {"sent", "remaining", "elapsed_s"}')
    add_connection_options(p, broker_required=False)
    p.set_defaults(handler=_drain)


def _from_config(path: Path) -> tuple[MqttConfig, Path, str, OutboxConfig]:
    app = load_config(path)  # a ConfigError is shown by edge.cli, exit 2
    return app.mqtt, Path(app.vehicle.data_dir), app.vehicle.vehicle_id, app.outbox


def _drain(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: must be positive")
    cap, free = _NO_CAP, 0
    if args.config is not None:
        cfg, data_dir, vehicle_id, outbox_cfg = _from_config(args.config)
        cap, free = outbox_cfg.image_cap_bytes, outbox_cfg.min_free_bytes
        if args.broker is not None:
            broker_cfg = mqtt_config_from_args(args)
            cfg = cfg.model_copy(update={"host": broker_cfg.host, "port": broker_cfg.port})
        data_dir = args.data_dir or data_dir
        vehicle_id = args.vehicle_id or vehicle_id
    else:
        if args.data_dir is None or args.broker is None:
            raise UsageError("give --config FILE, or --data-dir DIR and --broker HOST:PORT")
        cfg = mqtt_config_from_args(args)
        data_dir = args.data_dir
        vehicle_id = args.vehicle_id or vehicle_id_in_outbox(data_dir / DB_NAME) or ""
        if not vehicle_id:
            raise UsageError("--vehicle-id is needed: the outbox holds no finding to take it from")
    if args.inflight_window is not None:
        if args.inflight_window < 1:
            raise UsageError("--inflight-window must be at least 1")
        cfg = cfg.model_copy(update={"inflight_window": args.inflight_window})
    if args.receipt_timeout is not None:
        if args.receipt_timeout <= 0:
            raise UsageError(f"--receipt-timeout {args.receipt_timeout}: must be positive")
        cfg = cfg.model_copy(update={"receipt_timeout_s": args.receipt_timeout})
    try:
        check_vehicle_id(vehicle_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not (data_dir / DB_NAME).is_file():
        raise UsageError(f"--data-dir {data_dir}: no outbox ({DB_NAME}) there")
    try:
        outbox = Outbox.open(data_dir, image_cap_bytes=cap, min_free_bytes=free)
    except OutboxError as exc:
        print(f"roadpatrol sync drain: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    try:
        result = drain(
            cfg,
            outbox,
            vehicle_id,
            timeout_s=args.timeout,
            stop=stop,
            wait_receipts=not args.no_wait_receipts,
        )
    finally:
        outbox.close()
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"sent {result.sent} ({result.sent_findings} findings, {result.sent_images} images, "
            f"{result.sent_track_points} track points), {result.remaining} remaining, "
            f"{result.awaiting_receipt} awaiting the office's receipt, {result.elapsed_s:.1f} s"
            + (f"; last error: {result.last_error}" if result.remaining else "")
        )
    awaited = 0 if args.no_wait_receipts else result.awaiting_receipt
    return 0 if result.remaining == 0 and awaited == 0 else 1
