"""Which backbone blocks `model adapt` trains: one check and one description for the CLI (which
must answer before torch is imported), the trainer and the manifest."""

from __future__ import annotations

DEFAULT_FIRST = 11  # the stride-32 blocks and up; blocks 0..10 (to the stride-16 tap) frozen
FIRST_BLOCKS = range(5, DEFAULT_FIRST + 1)  # block 4 (the stride-8 tap) always stays frozen


def problem(first: int, keep_boxes: str) -> str | None:
    """Why training from block ``first`` cannot work with ``keep_boxes``, or None."""
    if first not in FIRST_BLOCKS:
        return f"{first}: give 5 to 11 (the stride-8 tap, block 4, always stays frozen and cached)"
    if first != DEFAULT_FIRST and keep_boxes == "frozen":
        return (
            f"{first} with --keep-boxes frozen: a frozen box head needs the stride-16 features "
            "it was trained on (use 11, or rehearsal)"
        )
    return None


def describe(first: int) -> str:
    blocks = "stride-32 blocks" if first == DEFAULT_FIRST else f"blocks {first}-15"
    return f"{blocks}, neck and heads; stem and blocks 0-{first - 1} frozen (features cached)"
