"""`roadpatrol outbox status`: what is waiting to go to the office.

It opens the database read-only, so it is safe beside a running recorder and never repairs,
moves or creates anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.config.mqtt import MqttConfig
from edge.errors import UsageError
from edge.outbox import recover_cli
from edge.outbox.quarantine import quarantined
from edge.outbox.queries import summary
from edge.outbox.schema import DB_NAME, connect_read_only

# The recorder's default for its screen's alert: this tool does not read the config.
_ALERT_S = float(MqttConfig.model_fields["receipt_alert_s"].default)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = subparsers.add_parser("outbox", help="Inspect the on-disk outbox.")
    actions = outbox.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="Pending findings and bytes, oldest age, evictions, pruned records.",
        description="Report what the outbox holds that the office has not acknowledged yet.",
    )
    status.add_argument(
        "--data-dir", type=Path, required=True, help="The recorder's data directory."
    )
    status.add_argument(
        "--json", action="store_true", help="Print one JSON object (stable snake_case keys)."
    )
    status.set_defaults(handler=run_status)
    recover_cli.register(actions)


def status_dict(data_dir: Path) -> dict[str, Any]:
    """The JSON object `outbox status --json` prints; raises UsageError for a wrong directory."""
    if not data_dir.is_dir():
        raise UsageError(f"data directory {data_dir} does not exist")
    db = data_dir / DB_NAME
    if not db.is_file():
        raise UsageError(f"no outbox in {data_dir} (expected {db})")
    conn = connect_read_only(db)
    try:
        report = asdict(summary(conn))
    finally:
        conn.close()
    return {
        "data_dir": str(data_dir),
        "database": str(db),
        **report,
        "disk_free_bytes": shutil.disk_usage(data_dir).free,
        # Pictures whose record was lost; `outbox recover` rebuilds findings from them.
        "quarantined_images": len(quarantined(data_dir)),
    }


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s"


def _text(r: dict[str, Any]) -> str:
    by_grade = ", ".join(f"grade {g}: {n}" for g, n in sorted(r["pending_by_grade"].items()) if n)
    frames = ", ".join(f"grade {g}: {n}" for g, n in sorted(r["frames_by_grade"].items()))
    oldest = r["oldest_captured_at_utc"]
    lines = [
        f"outbox {r['database']}",
        f"  pending findings  {r['pending']}" + (f" ({by_grade})" if by_grade else ""),
        f"  pending bytes     {_mib(r['pending_bytes'])}"
        f" ({r['pending_images']} images not yet sent)",
        f"  oldest pending    {_age(r['oldest_age_s'])}" + (f" ({oldest})" if oldest else ""),
        f"  awaiting office receipt {r['awaiting_receipt']} findings, "
        f"{r['awaiting_receipt_images']} images (oldest {_age(r['awaiting_receipt_age_s'])})",
        f"  track points      {r['pending_track_points']} not yet sent",
        f"  stored findings   {r['stored']}",
        f"  images on disk    {r['images_on_disk']} ({_mib(r['image_bytes_on_disk'])})",
        f"  evicted images    {r['evictions']} ({_mib(r['evicted_bytes'])})",
        f"  pruned after sent {r['pruned_findings']} findings, {r['pruned_images']} images"
        f" ({_mib(r['pruned_image_bytes'])}), {r['pruned_track_points']} track points",
        f"  graded frames     {frames}",
        f"  disk free         {_mib(r['disk_free_bytes'])}",
    ]
    if r["quarantined_images"]:
        lines.append(
            f"  quarantined       {r['quarantined_images']} images without a record "
            "(run `roadpatrol outbox recover`)"
        )
    silent = r["office_silent_s"]
    if silent is not None and silent >= _ALERT_S:
        lines.append(f"  the office has not confirmed anything for {_age(silent)}")
    if r["images_missing"]:
        lines.append(f"  missing images    {r['images_missing']} vanished before sending")
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    try:
        report = status_dict(args.data_dir)
    except sqlite3.DatabaseError as exc:
        print(
            f"roadpatrol outbox status: {args.data_dir / DB_NAME}: unreadable: {exc}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report, sort_keys=True) if args.json else _text(report))
    return 0
