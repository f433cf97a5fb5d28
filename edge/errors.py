"""Errors every command module shares (kept at the bottom so any layer may raise them)."""

from __future__ import annotations


class UsageError(Exception):
    """Misuse of the command line: printed without a traceback, exit status 2."""
