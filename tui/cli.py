"""`roadpatrol tui`: attach the driver's screen to a recorder that is already running."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.errors import UsageError
from edge.status_socket import RecorderUnreachable, RemoteRecorder, socket_path_for
from tui import screen


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="show the driver's screen for a running recorder",
        description="Attach the driver's screen to a recorder running as a service. Closing "
        "or killing the screen never stops recording.",
    )
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the recorder's TOML config: its data directory and [screen]",
    )
    target.add_argument("--socket", type=Path, metavar="PATH", help="the recorder's status socket")
    target.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the recorder's data directory (socket DIR/recorder.sock)",
    )
    parser.add_argument(
        "--lang",
        choices=("ja", "en", "auto"),
        default=None,
        help="screen language (default: the config's, else auto: the locale)",
    )
    parser.add_argument(
        "--refresh-hz",
        type=float,
        default=None,
        metavar="HZ",
        help="screen refreshes per second (default: the config's, else 4)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    lang, refresh_hz = args.lang, args.refresh_hz
    if args.config is not None:
        from edge.config.loader import load_config

        config = load_config(args.config)  # a ConfigError is shown by edge.cli, exit 2
        path = socket_path_for(config.vehicle.data_dir)
        lang = lang or config.screen.lang
        refresh_hz = refresh_hz or config.screen.refresh_hz
    elif args.socket is not None:
        path = args.socket
    elif args.data_dir is not None:
        path = socket_path_for(args.data_dir)
    else:
        raise UsageError(
            "say which recorder to show: --config FILE, --socket PATH or --data-dir DIR"
        )
    refresh_hz = 4.0 if refresh_hz is None else refresh_hz
    if not 0 < refresh_hz <= 30:
        raise UsageError(f"--refresh-hz must be in (0, 30], got {refresh_hz}")
    if not sys.stdout.isatty():
        raise UsageError("the screen needs an interactive terminal (stdout is not a tty)")
    try:
        remote = RemoteRecorder(path).connect()
    except (RecorderUnreachable, ValueError) as exc:
        print(f"roadpatrol tui: {exc}", file=sys.stderr)
        return 1
    with remote:
        return screen.run(remote, lang, refresh_hz=refresh_hz)
