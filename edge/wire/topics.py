"""MQTT topics between vehicles and the office, all under the configured ``topic_prefix``.

Per vehicle (``<prefix>/<vehicle id>/…``): ``finding``, ``image/<finding id>``, ``track``,
``status`` (vehicle → office), ``receipt`` (office → vehicle), ``model`` (a pushed package,
retained; ``<prefix>/fleet/model`` for every vehicle) and ``model/result`` (the vehicle's answer
to a push, retained). The broker's ACL (``sync/deploy/mosquitto.acl``) follows the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

FLEET = "fleet"  # the "vehicle" level of a push to every vehicle


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    vehicle_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.vehicle_id}"

    @property
    def finding(self) -> str:
        return f"{self.base}/finding"

    def image(self, finding_id: str) -> str:
        return f"{self.base}/image/{finding_id}"

    @property
    def track(self) -> str:
        return f"{self.base}/track"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def receipt(self) -> str:
        """The office's receipts to this vehicle (sync.receipts)."""
        return f"{self.base}/receipt"

    @property
    def model(self) -> str:
        """A package pushed to this vehicle (sync.office.push → sync.model_updates)."""
        return model_topic(self.prefix, self.vehicle_id)

    @property
    def model_result(self) -> str:
        """The vehicle's answer to a push (``model-result`` schema), retained."""
        return f"{self.model}/result"


def model_topic(prefix: str, vehicle_id: str | None) -> str:
    """``<prefix>/<vehicle-id>/model``, or ``<prefix>/fleet/model`` for every vehicle."""
    return f"{prefix}/{vehicle_id or FLEET}/model"
