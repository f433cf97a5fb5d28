"""Command-line options shared by `roadpatrol sync …` and `roadpatrol office …`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.config.mqtt import MqttConfig, MqttTlsConfig
from edge.errors import UsageError


def parse_broker(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6addr]:PORT'; UsageError naming --broker otherwise."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port_text)


def add_connection_options(parser: argparse.ArgumentParser, *, broker_required: bool) -> None:
    group = parser.add_argument_group("broker connection")
    group.add_argument("--broker", required=broker_required, metavar="HOST:PORT",
                       help="MQTT broker address")  # fmt: skip
    group.add_argument("--protocol", choices=("5", "3.1.1"), default="5",
                       help="MQTT protocol version (default 5)")  # fmt: skip
    group.add_argument("--ca-file", type=Path, help="CA certificate (PEM): enables TLS")
    group.add_argument("--certfile", type=Path, help="client certificate (PEM)")
    group.add_argument("--keyfile", type=Path, help="client certificate's key (PEM)")
    group.add_argument("--tls", action="store_true",
                       help="TLS with the system's CAs (implied by --ca-file)")  # fmt: skip
    group.add_argument("--username", help="MQTT user name")
    group.add_argument("--password-file", type=Path, help="file whose first line is the password")
    group.add_argument(
        "--password-env", metavar="VAR", help="environment variable with the password"
    )
    group.add_argument("--topic-prefix", default="roadpatrol/v1", help="topic prefix")


def mqtt_config_from_args(args: argparse.Namespace, **extra: Any) -> MqttConfig:
    """An MqttConfig from the connection options; UsageError for a bad combination."""
    host, port = parse_broker(args.broker)
    try:
        return MqttConfig(
            host=host,
            port=port,
            protocol=args.protocol,
            tls=MqttTlsConfig(
                enabled=bool(args.tls or args.ca_file or args.certfile),
                ca_file=args.ca_file,
                certfile=args.certfile,
                keyfile=args.keyfile,
            ),
            username=args.username,
            password_file=args.password_file,
            password_env=args.password_env,
            topic_prefix=args.topic_prefix,
            **extra,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(problems) from None
