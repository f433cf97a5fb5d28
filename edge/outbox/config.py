"""Config section ``[outbox]``: how much disk the finding images may use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_MB = 1024 * 1024


class OutboxConfig(BaseModel):
    """Limits for the on-disk outbox. Finding records are never dropped, only images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
            "same order as over the cap, and the status reports the disk as low."
        ),
    )

    @property
    def image_cap_bytes(self) -> int:
        return int(self.image_cap_mb * _MB)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * _MB)
