"""`roadpatrol office serve` and `roadpatrol office user add|list|disable`.

Parsers only at import: the web stack (starlette, uvicorn, argon2) is imported when a command
runs, so the other office commands work without the ``office`` extra.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from edge.errors import UsageError
from edge.wire.ids import VEHICLE_ID_RE
from sync.office.store_api import (
    DB_HELP,
    OfficeStore,
    StoreError,
    is_postgres,
    open_store,
    sqlite_path,
)

ROLE_CHOICES = ("viewer", "reviewer", "admin")


def add_console_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="the office web console: map, review, repairs")
    serve.add_argument("--db", required=True, help=DB_HELP)
    serve.add_argument("--images", type=Path, required=True, help="the office's images folder")
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default loopback; TLS via a proxy)")  # fmt: skip
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", type=Path, help="console settings (TOML)")
    serve.add_argument("--roads", type=Path, help="road network (GeoJSON) for the coverage share")
    serve.set_defaults(handler=_serve)

    user = sub.add_parser("user", help="console staff accounts")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an account (password from stdin, or asked twice)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLE_CHOICES, required=True)
    add.add_argument("--db", required=True, help=DB_HELP)
    add.set_defaults(handler=_user_add)
    listing = actions.add_parser("list", help="the accounts")
    listing.add_argument("--db", required=True, help=DB_HELP)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_user_list)
    disable = actions.add_parser("disable", help="disable an account (ends its sessions)")
    disable.add_argument("name")
    disable.add_argument("--db", required=True, help=DB_HELP)
    disable.set_defaults(handler=_user_disable)


def _store(db: str, command: str) -> OfficeStore | None:
    from sync.office.console_db import ensure_console_tables

    path = sqlite_path(db)
    if not is_postgres(db) and not path.is_file():  # a typo must not make a new database
        print(f"roadpatrol office {command}: office database {path}: no such file",
              file=sys.stderr)  # fmt: skip
        return None
    try:
        store = open_store(db, None)
    except StoreError as exc:
        print(f"roadpatrol office {command}: {exc}", file=sys.stderr)
        return None
    try:
        ensure_console_tables(store)
    except StoreError as exc:
        store.close()
        print(f"roadpatrol office {command}: {exc}", file=sys.stderr)
        return None
    return store


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise UsageError("password: at least 8 characters")
    return password


def _user_add(args: argparse.Namespace) -> int:
    from sync.office.console_db import (
    get_user,
    insert_user,
)
    from sync.office.web.auth import hash_password

    if not VEHICLE_ID_RE.match(args.name):  # the same safe alphabet as vehicle ids
        raise UsageError(f"user name {args.name!r}: letters, digits, '.', '_', '-' only")
    store = _store(args.db, "user add")
    if store is None:
        return 1
    try:
        if get_user(store, args.name) is not None:
            print(f"roadpatrol office user add: user {args.name!r} exists", file=sys.stderr)
            return 1
        insert_user(store, args.name, args.role, hash_password(_read_password(args.name)), "cli")
    finally:
        store.close()
    print(f"user {args.name} added ({args.role})")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    from sync.office.console_db import list_users

    store = _store(args.db, "user list")
    if store is None:
        return 1
    try:
        users = [{"name": u.name, "role": u.role, "disabled": u.disabled,
                  "created_at_utc": u.created_at_utc} for u in list_users(store)]  # fmt: skip
    finally:
        store.close()
    if args.json:
        print(json.dumps(users))
    for u in [] if args.json else users:
        print(f"{u['name']}  {u['role']}{'  disabled' if u['disabled'] else ''}  "
              f"{u['created_at_utc']}")  # fmt: skip
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    from sync.office.console_db import set_user_disabled

    store = _store(args.db, "user disable")
    if store is None:
        return 1
    try:
        found = set_user_disabled(store, args.name, True, "cli")
    finally:
        store.close()
    if not found:
        print(f"roadpatrol office user disable: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"user {args.name} disabled")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.config.loader import ConfigError
    from sync.office.web.app import create_app
    from sync.office.web.config import load_console_config
    from sync.office.web.coverage import RoadsError, load_roads

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be 1 to 65535")
    if not args.images.is_dir():
        raise UsageError(f"--images {args.images}: no such folder")
    try:
        config = load_console_config(args.config)
        roads = load_roads(args.roads) if args.roads else None
    except (ConfigError, RoadsError) as exc:
        print(f"roadpatrol office serve: {exc}", file=sys.stderr)
        return 1
    store = _store(args.db, "serve")
    if store is None:
        return 1
    store.close()
    app = create_app(args.db, args.images, config, roads=roads)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", server_header=False)  # fmt: skip
    return 0
