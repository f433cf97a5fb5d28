"""The publisher as a recorder service: `roadpatrol run` starts it beside capture and grading.

The composition root (edge.app) calls ``start_for_recorder(recorder)`` and later ``stop()``;
the recorder reads ``link_status()`` into its status snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from edge.config.mqtt import MqttConfig
from edge.outbox import Outbox
from edge.status import LinkStatus, Status
from sync.publisher import Publisher
from sync.receipts import ReceiptListener

if TYPE_CHECKING:
    from edge.config.loader import AppConfig
    from edge.recording.recorder import Recorder


class SyncService(Protocol):
    def stop(self) -> None: ...

    def link_status(self) -> LinkStatus: ...

    def wake(self) -> None: ...


class _Disabled:
    """``mqtt.enabled = false``: nothing is sent, the status says so."""

    def stop(self) -> None:
        return None

    def link_status(self) -> LinkStatus:
        return LinkStatus(enabled=False)

    def wake(self) -> None:
        return None


class _Running:
    """The publisher and, beside it, the listener for the office's receipts."""

    def __init__(self, publisher: Publisher, receipts: ReceiptListener) -> None:
        self.publisher = publisher
        self.receipts = receipts

    def stop(self) -> None:
        self.publisher.stop()
        self.receipts.stop()

    def link_status(self) -> LinkStatus:
        return self.publisher.link_status()

    def wake(self) -> None:
        self.publisher.wake()


def start(
    outbox: Outbox,
    app_config: AppConfig,
    status_provider: Callable[[], Status] | None = None,
) -> SyncService:
    """Start publishing ``outbox``; ``app_config`` is an AppConfig (its mqtt, vehicle)."""
    cfg: MqttConfig = app_config.mqtt
    if not cfg.enabled:
        return _Disabled()
    vehicle_id = app_config.vehicle.vehicle_id
    publisher = Publisher(cfg, outbox, vehicle_id, status_provider)
    # A persistent session of its own: receipts sent while the vehicle is away wait for it.
    receipts = ReceiptListener(
        cfg,
        outbox,
        publisher.vehicle_id,
        client_id=f"{cfg.effective_client_id(vehicle_id)}-receipts",
        persistent=True,
    )
    receipts.start()
    publisher.start()
    return _Running(publisher, receipts)


def start_for_recorder(recorder: Recorder) -> SyncService:
    """Publish a running recorder's outbox and show the link on its status (screen, status
    topic); edge.app starts it."""
    service = start(recorder.outbox, recorder.config, recorder.status)
    recorder.attach_link(service.link_status)
    return service
