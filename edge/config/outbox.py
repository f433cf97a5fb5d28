"""Config section ``[outbox]``: how much disk the finding images may use, and how long
records the office already has are kept."""

from __future__ import annotations

from pydantic import BaseModel, Field

from edge.config.types import SECTION_CONFIG

_MB = 1024 * 1024
_DAY_S = 86_400.0


class OutboxConfig(BaseModel):
    """Limits for the on-disk outbox. Finding records are never dropped, only images."""

    model_config = SECTION_CONFIG

    image_cap_mb: float = Field(
        default=2000.0,
        gt=0,
        description=(
            "Most disk space the finding images may take, in MiB. Over it, the oldest images "
            "of the lowest grades are deleted first (already-sent images before unsent ones)."
        ),
    )
    min_free_mb: float = Field(
        default=500.0,
        ge=0,
        description=(
            "Free space to keep on the data disk, in MiB. Below it, images are deleted in the "
            "same order as over the cap, and the status reports the disk as low. On a small "
            "disk it is lowered to 20 % of the disk, and it is never below the outbox's "
            "reserve for records (2 % of the disk, 128 KiB to 4 MiB); start-up says so."
        ),
    )

    keep_sent_days: float = Field(
        default=7.0,
        ge=0,
        description=(
            "Days to keep findings, their images and track points after the office has "
            "acknowledged them (the crew can still look at them); older ones are deleted a few "
            "hundred at a time. 0 deletes them at the next pass. Unsent records are never "
            "deleted, nor a sent finding whose image has not been sent yet."
        ),
    )

    @property
    def keep_sent_s(self) -> float:
        return self.keep_sent_days * _DAY_S

    @property
    def image_cap_bytes(self) -> int:
        return int(self.image_cap_mb * _MB)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * _MB)
