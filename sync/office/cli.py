"""`roadpatrol office receive` and `roadpatrol office export`; review: sync.office.review_cli."""

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
from typing import Any, TextIO

from edge.errors import UsageError
from sync.cli_common import add_connection_options, mqtt_config_from_args
from sync.office.export import (
    FINDING_COLUMNS,
    SITE_COLUMNS,
    finding_rows,
    parse_since,
    site_rows,
    write_csv,
    write_geojson,
)
from sync.office.receiver import SHARE_NAME_RE, OfficeReceiver
from sync.office.store_api import DATABASE_ERRORS, DB_HELP, StoreError, open_store

log = logging.getLogger("sync.office")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    office = subparsers.add_parser("office", help="maintenance office: receive, review and export")
    sub = office.add_subparsers(dest="office_command", metavar="ACTION", required=True)

    receive = sub.add_parser(
        "receive", help="store the fleet's findings, images and tracks until stopped"
    )
    add_connection_options(receive, broker_required=True)
    receive.add_argument("--db", required=True, help=DB_HELP)
    receive.add_argument("--images", type=Path, required=True, help="folder for finding images")
    receive.add_argument("--client-id", default="roadpatrol-office",
                         help="MQTT client id; the broker keeps this id's session")  # fmt: skip
    receive.add_argument("--session-expiry-s", type=int, default=7 * 24 * 3600,
                         help="how long the broker queues for us while we are away")  # fmt: skip
    receive.add_argument("--site-radius-m", type=float, default=5.0,
                         help="findings of one type this close form one damage site")  # fmt: skip
    receive.add_argument("--receipt-batch-s", type=float, default=0.2,
                         help="receipts to vehicles gather this long, then go")  # fmt: skip
    receive.add_argument("--shared-group", metavar="NAME", default=None,
                         help="share the feed with the other receivers of group NAME (MQTT 5 "
                         "shared subscription $share/NAME/...; give each its own --client-id)")
    receive.add_argument("--duration-s", type=float, default=None,
                         help="stop after S seconds (default: until signalled)")  # fmt: skip
    receive.set_defaults(handler=_receive)

    export = sub.add_parser("export", help="findings or damage sites as GeoJSON or CSV")
    export.add_argument("--db", required=True, help=DB_HELP)
    export.add_argument("--format", choices=("geojson", "csv"), required=True)
    export.add_argument("--min-grade", type=int, choices=(0, 1, 2, 3), default=0)
    export.add_argument("--since", help="only findings captured (sites seen) at or after this")
    export.add_argument("--sites", action="store_true", help="one feature per damage site")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    export.set_defaults(handler=_export)

    from sync.office.push import add_push_command
    from sync.office.review_cli import add_review_commands
    from sync.office.web.cli import add_console_commands

    add_push_command(sub)
    add_review_commands(sub)
    add_console_commands(sub)


def _receive(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.site_radius_m <= 0:
        raise UsageError(f"--site-radius-m {args.site_radius_m}: must be positive")
    cfg = mqtt_config_from_args(args)
    if args.shared_group is not None and not SHARE_NAME_RE.match(args.shared_group):
        raise UsageError(f"--shared-group {args.shared_group!r}: letters, digits, '-' and '_' only")
    try:
        store = open_store(args.db, args.images, site_radius_m=args.site_radius_m)
    except StoreError as exc:
        print(f"roadpatrol office receive: {exc}", file=sys.stderr)
        return 1
    if args.receipt_batch_s <= 0:
        raise UsageError(f"--receipt-batch-s {args.receipt_batch_s}: must be positive")
    receiver = OfficeReceiver(
        cfg,
        store,
        client_id=args.client_id,
        session_expiry_s=args.session_expiry_s,
        receipt_batch_s=args.receipt_batch_s,
        shared_group=args.shared_group,
    )
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    receiver.start()
    log.info("receiving on %s:%d into %s", cfg.host, cfg.port, store.location)
    done.wait(args.duration_s)
    receiver.stop()
    store.close()
    print(json.dumps(asdict(receiver.stats)))
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        store = open_store(args.db, None, read_only=True)
    except StoreError as exc:
        print(f"roadpatrol office export: {exc}", file=sys.stderr)
        return 1
    columns: tuple[str, ...]
    try:
        if args.sites:
            rows, columns = site_rows(store, min_grade=args.min_grade, since=since), SITE_COLUMNS
        else:
            rows = finding_rows(store, min_grade=args.min_grade, since=since)
            columns = FINDING_COLUMNS
    except DATABASE_ERRORS as exc:
        print(f"roadpatrol office export: office database {store.location}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.output is None:
        _write(rows, columns, args.format, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            _write(rows, columns, args.format, out)
    return 0


def _write(rows: list[dict[str, Any]], columns: tuple[str, ...], fmt: str, out: TextIO) -> None:
    if fmt == "geojson":
        write_geojson(rows, out)
    else:
        write_csv(rows, columns, out)
