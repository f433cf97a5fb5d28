"""Real parts for the sync tests, gathered in one place so that tests import them from here.

Each lives in its own module: the mosquitto broker and its client config (_mqtt_broker), a
misbehaving TCP proxy (_mqtt_proxy), a test CA (_mqtt_pki), findings and outboxes with real
road images (_mqtt_data), and the receiving side: office, collector, waits (_mqtt_collect).
"""

from __future__ import annotations

from _mqtt_broker import Broker, broker, free_port, mosquitto_binary, mqtt_cfg, wait_until
from _mqtt_collect import Collector, Office, first_json_message, wait_until_office_subscribed
from _mqtt_data import (
    SAMPLE_FRAMES,
    SHARED_DATA,
    fill_outbox,
    make_finding,
    open_outbox,
    road_jpegs,
)
from _mqtt_pki import Pki, make_pki
from _mqtt_proxy import TcpProxy

__all__ = [
    "SAMPLE_FRAMES",
    "SHARED_DATA",
    "Broker",
    "Collector",
    "Office",
    "Pki",
    "TcpProxy",
    "broker",
    "fill_outbox",
    "first_json_message",
    "free_port",
    "make_finding",
    "make_pki",
    "mosquitto_binary",
    "mqtt_cfg",
    "open_outbox",
    "road_jpegs",
    "wait_until",
    "wait_until_office_subscribed",
]
