"""MQTT 5 PUBLISH properties encoded once, instead of at every send.

paho encodes a ``Properties`` object each time it sends a PUBLISH, through a generic
name-lookup path that costs about as much as the rest of the publish, and building one costs
as much again. The publisher sends thousands of messages whose properties are either all the
same (JSON payloads) or differ only in a few user properties (images), so it encodes them here,
byte for byte as paho would (the tests compare the two), and paho just copies the bytes.
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_PAYLOAD_FORMAT_UTF8 = b"\x01\x01"  # Payload Format Indicator (1) = 1: UTF-8 text
_CONTENT_TYPE = b"\x03"
_USER_PROPERTY = b"\x26"


class PrepackedProperties(Properties):
    """PUBLISH properties whose wire form is fixed when made; read-only from then on.

    paho only calls ``pack()`` on a PUBLISH's properties (and ``str()`` when it logs), so the
    generic per-instance tables of ``Properties.__init__`` are skipped on purpose.
    """

    def __init__(
        self, packed: bytes, content_type: str, user: dict[str, str] | None = None
    ) -> None:
        # Properties.__setattr__ accepts MQTT property names only.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "_shown", (content_type, user))  # for log lines only

    def pack(self) -> bytes:
        packed: bytes = object.__getattribute__(self, "_packed")
        return packed

    def __str__(self) -> str:
        content_type, user = object.__getattribute__(self, "_shown")
        return f"[ContentType: {content_type}" + (f", UserProperty: {user}]" if user else "]")

    __repr__ = __str__


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"MQTT property string too long ({len(raw)} bytes): {text[:40]!r}…")
    return len(raw).to_bytes(2, "big") + raw


def _variable_byte_integer(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pack_publish_properties(
    content_type: str, user: dict[str, str] | None = None, *, utf8: bool = False
) -> bytes:
    """The wire form paho gives ``sync.mqtt_client.publish_properties`` of the same arguments."""
    body = bytearray(_PAYLOAD_FORMAT_UTF8 if utf8 else b"")
    body += _CONTENT_TYPE + _utf8(content_type)
    for key, value in (user or {}).items():
        body += _USER_PROPERTY + _utf8(key) + _utf8(value)
    return _variable_byte_integer(len(body)) + bytes(body)


def prepacked_properties(
    content_type: str, user: dict[str, str] | None = None, *, utf8: bool = False
) -> PrepackedProperties:
    packed = pack_publish_properties(content_type, user, utf8=utf8)
    return PrepackedProperties(packed, content_type, user)
