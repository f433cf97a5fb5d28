"""`roadpatrol outbox recover`: salvage set-aside or damaged outboxes and quarantined images
into the live outbox (edge.outbox.recover). Safe beside a running recorder: it writes through
SQLite's locking, and is idempotent by finding id."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path

from edge.errors import UsageError
from edge.outbox.diskspace import reserve_bytes_for
from edge.outbox.quarantine import QUARANTINE_DIR
from edge.outbox.recover import Salvaged, images_beside, salvage_database, salvage_images
from edge.outbox.schema import DB_NAME, OutboxError
from edge.outbox.store import Outbox

_NO_LIMIT = 1 << 62


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recover = actions.add_parser(
        "recover",
        help="Salvage damaged or set-aside outboxes and quarantined images into the live one.",
        description=(
            "Copy every readable finding record, track point and image of SOURCE (a damaged "
            "or set-aside outbox database, or a folder of finding JPEGs) into the live outbox "
            "of --data-dir, so that they are sent. Without SOURCE: every set-aside database "
            f"({DB_NAME}.corrupt-*) and the {QUARANTINE_DIR}/ folder of the data directory. "
            "Findings already there are left alone, so running it twice is harmless."
        ),
    )
    recover.add_argument("sources", nargs="*", type=Path, metavar="SOURCE")
    recover.add_argument("--data-dir", type=Path, required=True, help="The live outbox's folder.")
    recover.add_argument(
        "--images", type=Path, default=None, help="The pictures of SOURCE (default: beside it)."
    )
    recover.add_argument("--json", action="store_true", help="One JSON object per source.")
    recover.set_defaults(handler=run_recover)


def _default_sources(data_dir: Path) -> list[Path]:
    aside = [
        p
        for p in sorted(data_dir.glob(f"{DB_NAME}.corrupt-*"))
        if not p.name.endswith(("-wal", "-shm"))
    ]
    folder = data_dir / QUARANTINE_DIR
    return [*aside, folder] if folder.is_dir() else aside


def _images_of(db: Path, given: Path | None) -> Path | None:
    if given is not None:
        return given
    beside = images_beside(db)
    if beside is not None:
        return beside
    return db.parent / "images" if db.name == DB_NAME else None


def _salvage(source: Path, data_dir: Path, images: Path | None) -> Salvaged:
    if source.is_dir():
        return salvage_images(sorted(source.glob("*.jpg")), data_dir, str(source))
    return salvage_database(source, data_dir, _images_of(source, images))


def run_recover(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"{data_dir} is not a directory")
    sources = args.sources or _default_sources(data_dir)
    for source in sources:
        if args.sources and not source.exists():
            raise UsageError(f"{source}: no such file or folder")
        if source.resolve() == (data_dir / DB_NAME).resolve():
            raise UsageError(f"{source} is the live outbox itself; name a damaged copy")
    try:
        # Creates the live outbox if needed; as the lock holder it also quarantines orphans.
        data_dir.mkdir(parents=True, exist_ok=True)
        floor = reserve_bytes_for(data_dir)  # the least floor: evicts nothing, says nothing
        Outbox.open(data_dir, image_cap_bytes=_NO_LIMIT, min_free_bytes=floor).close()
    except (OutboxError, OSError) as exc:
        print(f"roadpatrol outbox recover: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for source in sources:
        try:
            report = _salvage(source, data_dir, args.images)
        except (sqlite3.Error, OSError) as exc:
            print(f"roadpatrol outbox recover: {source}: unreadable: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(asdict(report), sort_keys=True) if args.json else report.line())
    return 1 if failed else 0
