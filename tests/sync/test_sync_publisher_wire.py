"""The publisher's shortcuts against the slow paths they replace (no broker needed).

Pre-encoded MQTT 5 properties must be the very bytes paho would send, and the batched
identity lookup must agree with the one-by-one lookup, bad records included.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.outbox.identity import FindingIdentities, FindingIdentity
from sync.mqtt_client import publish_properties
from sync.wire_properties import pack_publish_properties, prepacked_properties

from support.sync_data import fill_outbox

# MQTT forbids U+0000 in its UTF-8 strings (paho refuses to read it back).
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
)


@settings(max_examples=200, deadline=None)
@given(
    content_type=texts,
    user=st.none() | st.dictionaries(texts, texts, max_size=60),
    utf8=st.booleans(),
)
def test_prepacked_properties_are_the_bytes_paho_packs(
    content_type: str, user: dict[str, str] | None, utf8: bool
) -> None:
    # Up to 60 pairs of 300 characters: the length prefix takes 1, 2 and 3 bytes.
    expected = publish_properties(content_type, user, utf8=utf8).pack()
    assert pack_publish_properties(content_type, user, utf8=utf8) == expected
    props = prepacked_properties(content_type, user, utf8=utf8)
    assert isinstance(props, Properties) and props.pack() == expected
    back = Properties(PacketTypes.PUBLISH)
    back.unpack(expected)
    assert back.ContentType == content_type
    assert [tuple(p) for p in getattr(back, "UserProperty", [])] == list((user or {}).items())


def test_identities_looked_up_together_match_one_by_one(tmp_path: Path) -> None:
    findings = fill_outbox(tmp_path / "data", "veh-ident", 6, [])
    db = tmp_path / "data" / "outbox.sqlite3"
    broken = findings[2].id
    with sqlite3.connect(db) as conn:  # a record whose JSON was damaged on disk
        conn.execute("UPDATE findings SET payload = '{not json' WHERE id = ?", (broken,))
    identities = FindingIdentities(db, "veh-ident", capacity=1)
    try:
        remembered = findings[0]
        identities.remember(remembered.id, FindingIdentity("veh-other", "boot-x", 99))
        ids = [f.id for f in findings] + ["00000000-0000-7000-8000-000000000000"]
        found = identities.get_many(ids)
        assert found[remembered.id] == FindingIdentity("veh-other", "boot-x", 99)
        for f in findings[1:]:
            if f.id == broken:
                assert f.id not in found and identities.get(f.id) is None
            else:
                assert found[f.id] == FindingIdentity(f.vehicle_id, f.boot_id, f.seq)
                assert identities.get(f.id) == found[f.id]
        assert len(found) == len(findings) - 1
    finally:
        identities.close()
