"""The ``mqtt`` config section: how a vehicle reaches the office's broker.

edge owns the config schema (it loads and validates the whole file); sync reads this section.
The password itself never lives in the config file: it is read from a file or an environment
variable at connect time, so the config can be shown, logged and copied safely.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from edge.config.types import SECTION_CONFIG, ConfigPath

_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")


class MqttTlsConfig(BaseModel):
    """TLS towards the broker: a CA to trust, and optionally a client certificate."""

    model_config = SECTION_CONFIG

    enabled: bool = Field(default=False, description="Connect with TLS.")
    ca_file: ConfigPath | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the broker's certificate; "
        "None: the system's trust store.",
    )
    certfile: ConfigPath | None = Field(
        default=None, description="PEM client certificate, for brokers that require one."
    )
    keyfile: ConfigPath | None = Field(
        default=None, description="PEM private key of the client certificate."
    )

    @model_validator(mode="after")
    def _key_with_cert(self) -> MqttTlsConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("tls.certfile and tls.keyfile must be given together")
        return self


class MqttConfig(BaseModel):
    """Store-and-forward to the office over MQTT (QoS 1)."""

    model_config = SECTION_CONFIG

    enabled: bool = Field(default=True, description="Publish the outbox to the broker.")
    host: str = Field(default="localhost", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version. 5 reports refused publishes (PUBACK reason "
        "codes); 3.1.1 brokers drop them silently.",
    )
    client_id: str | None = Field(
        default=None,
        description="MQTT client id; None: 'roadpatrol-<vehicle id>'.",
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=3600, description="MQTT keepalive interval in seconds."
    )
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig, description="TLS settings.")
    username: str | None = Field(default=None, description="MQTT user name; None: anonymous.")
    password_file: ConfigPath | None = Field(
        default=None, description="File whose first line is the MQTT password."
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the MQTT password."
    )
    topic_prefix: str = Field(
        default="roadpatrol/v1",
        description="Topics are '<prefix>/<vehicle id>/finding|image/<id>|track|status'.",
    )
    inflight_window: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Most records handed to the MQTT client and not yet acknowledged; at most "
        "the broker's Receive Maximum of them are on the wire, the rest wait in the client.",
    )
    puback_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="No PUBACK for this long while records are in flight: the link is taken "
        "as half-open and dropped, and the records are sent again on a new connection.",
    )
    receipt_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A finding or image the broker acknowledged but the office has not "
        "receipted (stored in its database) within this long is sent again; the wait doubles "
        "with each try, up to receipt_max_wait_s.",
    )
    receipt_max_wait_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Longest wait for the office's receipt between two sends of one record.",
    )
    receipt_alert_s: float = Field(
        default=3600.0,
        gt=0,
        description="Records have waited this long with no receipt from the office: the "
        "driver's screen and the status topic say 'the office has not confirmed anything'.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Give up one TCP/TLS/CONNECT attempt after this long."
    )
    reconnect_min_s: float = Field(
        default=1.0, gt=0, description="First wait before reconnecting; doubles per failure."
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait between reconnect attempts."
    )
    track_interval_s: float = Field(
        default=5.0, gt=0, description="Record a track point at least this often while moving."
    )
    track_min_distance_m: float = Field(
        default=25.0, ge=0, description="...or whenever the vehicle moved this far."
    )
    track_batch_max: int = Field(
        default=100, ge=1, le=5000, description="Most track points in one track message."
    )
    status_interval_s: float = Field(
        default=10.0, gt=0, description="Publish the retained status message this often."
    )
    model_push_max_mb: float = Field(
        default=40.0,
        gt=0,
        le=1024,
        description="A pushed model message larger than this (MiB) is refused before it is "
        "parsed. The shipped packages push as 5 MiB (int8) and 16 MiB (fp32).",
    )

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        levels = self.topic_prefix.split("/")
        if not all(_TOPIC_LEVEL.match(level) for level in levels):
            raise ValueError(
                f"topic_prefix {self.topic_prefix!r}: levels may hold only letters, digits, "
                "'_', '.', '-' (no wildcards, no empty levels)"
            )
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        return self

    def effective_client_id(self, vehicle_id: str) -> str:
        return self.client_id or f"roadpatrol-{vehicle_id}"

    def read_password(self) -> str | None:
        """The password from its file or variable; raises ValueError naming the source."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"mqtt.password_file {self.password_file}: {exc.strerror}"
                ) from exc
            lines = text.splitlines()
            return lines[0] if lines else ""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"mqtt.password_env: ${self.password_env} is not set")
            return value
        return None
