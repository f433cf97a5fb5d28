"""Building paho clients from the ``mqtt`` config (the reconnect backoff: edge.backoff).

Both the vehicle's publisher and the office receiver connect the same way (protocol version,
TLS, user name and password), so the paho set-up lives here once.
"""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config.mqtt import MqttConfig


def protocol_of(cfg: MqttConfig) -> mqtt.MQTTProtocolVersion:
    return mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311


def make_client(cfg: MqttConfig, client_id: str, *, clean_start: bool) -> mqtt.Client:
    """A paho client (VERSION2 callbacks) with TLS and credentials applied, not yet connected.

    ``clean_start`` for MQTT 3.1.1 is the clean-session flag, set here; for MQTT 5 it is given
    to :func:`connect`. Raises ValueError naming the setting when a credential can't be read.
    """
    protocol = protocol_of(cfg)
    if protocol == mqtt.MQTTv5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=clean_start,
        )
    client.connect_timeout = cfg.connect_timeout_s
    if cfg.tls.enabled:
        for name, path in (
            ("ca_file", cfg.tls.ca_file),
            ("certfile", cfg.tls.certfile),
            ("keyfile", cfg.tls.keyfile),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"mqtt.tls.{name}: {path} is not a readable file")
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.certfile) if cfg.tls.certfile else None,
            keyfile=str(cfg.tls.keyfile) if cfg.tls.keyfile else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.read_password())
    return client


def connect(
    client: mqtt.Client,
    cfg: MqttConfig,
    *,
    clean_start: bool,
    session_expiry_s: int | None = None,
) -> None:
    """Blocking TCP/TLS connect and CONNECT; the CONNACK arrives through the network loop."""
    if client.protocol == mqtt.MQTTv5:
        props = None
        if session_expiry_s is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry_s
        client.connect(
            cfg.host, cfg.port, cfg.keepalive_s, clean_start=clean_start, properties=props
        )
    else:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s)


def publish_properties(
    content_type: str, user: dict[str, str] | None = None, *, utf8: bool = False
) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    if utf8:
        props.PayloadFormatIndicator = 1
    if user:
        props.UserProperty = list(user.items())
    return props


def reason_text(reason_code: Any) -> str:
    """'Not authorized (0x87)' for a paho ReasonCode; str() for anything else."""
    value = getattr(reason_code, "value", None)
    return f"{reason_code} (0x{value:02x})" if isinstance(value, int) else str(reason_code)
