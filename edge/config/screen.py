"""Config section ``[screen]``: the driver's screen and the status socket it attaches through."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from edge.config.types import SECTION_CONFIG


class ScreenConfig(BaseModel):
    """Config section ``[screen]``: the driver's screen and the socket it attaches through."""

    model_config = SECTION_CONFIG

    lang: Literal["auto", "ja", "en"] = Field(
        default="auto",
        description="Screen language. 'auto' follows the locale (LC_ALL, LC_MESSAGES, LANG: "
        "ja_* gives Japanese); `--lang` on the command line overrides this.",
    )
    refresh_hz: float = Field(
        default=4.0,
        gt=0,
        le=30,
        description="How often the screen redraws from the recorder's status, per second.",
    )
    status_socket: bool = Field(
        default=True,
        description="Serve the status socket (DATA_DIR/recorder.sock) so that `roadpatrol tui` "
        "can attach to the running recorder.",
    )
    status_rate_hz: float = Field(
        default=4.0,
        gt=0,
        le=30,
        description="Status snapshots per second sent to each attached screen.",
    )
