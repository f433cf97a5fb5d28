"""`roadpatrol office review` and `roadpatrol office export-graded`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import UsageError
from sync.office.export import parse_since
from sync.office.graded import GradedExportError, export_graded
from sync.office.review import (
    ReviewError,
    add_review,
    ensure_reviews_readable,
    parse_type_codes,
    review_history,
    review_queue,
)
from sync.office.store_api import (
    DATABASE_ERRORS,
    DB_HELP,
    OfficeStore,
    StoreError,
    is_postgres,
    open_store,
    sqlite_path,
)


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "office"


def add_review_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    review = sub.add_parser(
        "review",
        help="confirm or correct a finding, or list what waits for review",
        description="Store the office's verdict beside the vehicle's finding (history is kept; "
        "the newest review counts), or with --list show findings, office grade 3 first.",
    )
    review.add_argument("--db", required=True, help=DB_HELP)
    review.add_argument("finding_id", nargs="?", metavar="FINDING_ID")
    verdict = review.add_mutually_exclusive_group()
    verdict.add_argument("--confirm", action="store_true", help="the vehicle was right")
    verdict.add_argument("--grade", type=int, metavar="N", help="corrected grade, 0 to 3")
    verdict.add_argument("--not-damage", action="store_true", help="no damage here")
    review.add_argument("--types", metavar="CODES",
                        help="with --grade: corrected type codes, e.g. D00,D40 "
                        "(default: the vehicle's)")  # fmt: skip
    review.add_argument("--by", default=None, help="reviewer's name (default: login name)")
    review.add_argument("--note", default="", help="free text kept with the review")
    review.add_argument("--site-radius-m", type=float, default=5.0,
                        help="a corrected type joins a damage site this close (give the same as "
                        "`office receive`)")  # fmt: skip
    review.add_argument("--list", action="store_true", help="list findings instead")
    review.add_argument("--unreviewed", action="store_true", help="with --list: only unreviewed")
    review.add_argument("--min-grade", type=int, default=0, metavar="N",
                        help="with --list: office grade at least N")  # fmt: skip
    review.add_argument("--json", action="store_true", help="machine-readable output")
    review.set_defaults(handler=_review)

    graded = sub.add_parser(
        "export-graded",
        help="graded images as the folder tree `model evaluate --folders` reads",
    )
    graded.add_argument("--db", required=True, help=DB_HELP)
    graded.add_argument("--images", type=Path, required=True,
                        help="the office's images folder (from `office receive`)")  # fmt: skip
    graded.add_argument("--out", type=Path, required=True, help="new or empty folder to fill")
    graded.add_argument("--since", help="only findings captured at or after this ISO time")
    graded.add_argument("--reviewed-only", action="store_true",
                        help="leave out findings the office has not reviewed")  # fmt: skip
    graded.set_defaults(handler=_export_graded)


def _open(
    db: str, images: Path | None, *, read_only: bool, command: str, radius_m: float = 5.0
) -> OfficeStore | None:
    # A writable open would create the file: a typo must not make a new office.
    if not is_postgres(db) and not sqlite_path(db).is_file():
        print(f"roadpatrol office {command}: office database {sqlite_path(db)}: no such file",
              file=sys.stderr)  # fmt: skip
        return None
    try:
        return open_store(db, images, read_only=read_only, site_radius_m=radius_m)
    except StoreError as exc:
        print(f"roadpatrol office {command}: {exc}", file=sys.stderr)
        return None


def _review(args: argparse.Namespace) -> int:
    chosen = args.confirm or args.not_damage or args.grade is not None
    if args.list:
        if args.finding_id or chosen or args.types:
            raise UsageError("--list takes no FINDING_ID, verdict or --types")
        if not 0 <= args.min_grade <= 3:
            raise UsageError(f"--min-grade {args.min_grade}: must be 0, 1, 2 or 3")
    else:
        if not args.finding_id:
            raise UsageError("give a FINDING_ID and one of --confirm, --grade N, --not-damage "
                             "(or --list)")  # fmt: skip
        if not chosen:
            raise UsageError(f"finding {args.finding_id}: give one of --confirm, --grade N, "
                             "--not-damage")  # fmt: skip
        if args.types is not None and args.grade is None:
            raise UsageError(f"--types {args.types}: goes with --grade N only")
        if args.grade is not None and not 0 <= args.grade <= 3:
            raise UsageError(f"--grade {args.grade}: must be 0, 1, 2 or 3")
        if not args.site_radius_m > 0:
            raise UsageError(f"--site-radius-m {args.site_radius_m}: must be positive")
    # Read-only for --list: listing must work on a database the receiver holds or we may not write.
    store = _open(args.db, None, read_only=args.list, command="review", radius_m=args.site_radius_m)
    if store is None:
        return 1
    try:
        if args.list:
            return _list(store, args)
        try:
            types = parse_type_codes(args.types) if args.types is not None else None
            verdict = "confirmed" if args.confirm else "not_damage" if args.not_damage else (
                "corrected"
            )  # fmt: skip
            review = add_review(
                store, args.finding_id, verdict, reviewer=args.by or _default_reviewer(),
                grade=args.grade, type_codes=types, note=args.note,
            )  # fmt: skip
        except ReviewError as exc:
            raise UsageError(str(exc)) from None
        history = review_history(store, args.finding_id)
    except DATABASE_ERRORS as exc:
        print(f"roadpatrol office review: office database {store.location}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json.dumps({**review.as_dict(), "reviews": len(history)}))
    else:
        what = {"confirmed": "confirmed", "not_damage": "marked not damage"}.get(
            review.verdict, f"corrected to grade {review.grade} ({','.join(review.type_codes)})"
        )
        print(f"finding {review.finding_id}: {what} by {review.reviewer} "
              f"(review {len(history)} of this finding)")  # fmt: skip
    return 0


def _list(store: OfficeStore, args: argparse.Namespace) -> int:
    ensure_reviews_readable(store)
    rows = review_queue(store, unreviewed_only=args.unreviewed, min_grade=args.min_grade)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        print(_line(r))
    print(f"{len(rows)} finding(s)", file=sys.stderr)
    return 0


def _line(r: dict[str, Any]) -> str:
    where = "no fix" if r["lat_deg"] is None else f"{r['lat_deg']:.6f},{r['lon_deg']:.6f}"
    verdict = r["review_verdict"] or "unreviewed"
    return (f"{r['id']}  grade {r['office_grade']} (vehicle {r['grade']} {r['type_codes'] or '-'})"
            f"  {r['captured_at_utc']}  {r['vehicle_id']}  {where}  {verdict}")  # fmt: skip


def _export_graded(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.images.is_dir():
        raise UsageError(f"--images {args.images}: no such folder")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise UsageError(f"--out {args.out}: exists and is not an empty folder")
    store = _open(args.db, args.images, read_only=True, command="export-graded")
    if store is None:
        return 1
    try:
        summary = export_graded(store, args.out, since=since, reviewed_only=args.reviewed_only)
    except GradedExportError as exc:
        print(f"roadpatrol office export-graded: {exc}", file=sys.stderr)
        return 1
    except DATABASE_ERRORS as exc:
        print(f"roadpatrol office export-graded: office database {store.location}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        store.close()
    print(json.dumps(summary))
    return 0
