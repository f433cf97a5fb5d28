"""The office payload says how each image was anonymised: a real mosquitto, the real publisher,
images anonymised by the real privacy stage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config.privacy import PrivacyConfig
from edge.privacy.anonymise import read_note
from edge.privacy.stage import PrivacyStage
from edge.wire.validate import IMAGE_SCHEMA_TAG, schema_errors
from sync.publisher import Publisher

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Collector
from support.privacy import frames, sharpness
from support.sync_data import make_finding, open_outbox

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

VEHICLE = "veh-privacy"


def test_images_reach_the_office_blurred_with_what_anonymised_them(
    broker: Broker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    photos = frames()
    with open_outbox(tmp_path / "data") as outbox:
        stage = PrivacyStage(PrivacyConfig(), outbox, jpeg_quality=85).start()
        boxes_of = {}
        for seq, (path, boxes) in enumerate(photos):
            finding = make_finding(VEHICLE, seq, grade=2)
            outbox.add(finding, None)
            stage.submit(finding, cv2.imread(str(path)))
            boxes_of[finding.id] = (cv2.imread(str(path)), boxes)
        assert stage.wait_idle(60)
        stage.close()
        collector = Collector(broker.port)
        publisher = Publisher(mqtt_cfg(broker.port), outbox, VEHICLE)
        publisher.start()
        try:
            assert wait_until(lambda: outbox.summary().pending_images == 0, 30)
            assert wait_until(
                lambda: sum("/image/" in t for t, *_ in collector.snapshot()) == len(photos), 10
            )
        finally:
            publisher.stop()
        messages = collector.snapshot()
        collector.close()
    images = [(t, p, m) for t, p, m, _ in messages if "/image/" in t]
    assert len(images) == len(photos)
    for topic, payload, meta in images:
        user = meta["user"]
        assert isinstance(user, dict) and schema_errors("image", user) == []
        assert user["schema"] == IMAGE_SCHEMA_TAG == "roadpatrol.image/2"
        assert user["anonymised"] == "true"
        assert "YuNet" in user["anonymiser"] and "PP-OCRv6_det_small" in user["anonymiser"]
        note = read_note(payload)  # the JPEG itself says so too, wherever it is copied
        assert note is not None and note["anonymised"] is True
        raw, boxes = boxes_of[topic.rsplit("/", 1)[1]]
        sent = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        for box in boxes:
            assert sharpness(sent, box) < 0.1 * sharpness(raw, box)
