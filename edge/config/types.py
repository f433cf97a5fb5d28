"""What every config section shares: strict types, unknown keys refused, frozen.

Strict, because TOML already has booleans, integers and floats: ``loop = "yes"``,
``enabled = "no"`` or ``port = "1883"`` is a mistake to name, not a value to guess (pydantic's
lax mode would read "no" as False and "1883" as 1883). An integer is still fine where a float
is wanted (``fps = 4``). Paths are the one exception: TOML has no path type, so they come as
strings; ``ConfigPath`` accepts those (and only strings or paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Strict

SECTION_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)

ConfigPath = Annotated[Path, Strict(False)]
# A TOML array of path strings; a tuple in the model, so the config stays hashable.
ConfigPaths = Annotated[tuple[ConfigPath, ...], Strict(False)]
