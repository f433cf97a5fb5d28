"""Errors every command module shares (kept at the bottom so any layer may raise them)."""

from __future__ import annotations

import logging
import sqlite3
import sys

# What a full or failing disk raises: expected on a vehicle, said in one line, never a bug.
DISK_ERRORS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)


class UsageError(Exception):
    """Misuse of the command line: printed without a traceback, exit status 2."""


def log_failure(logger: logging.Logger, what: str, *args: object) -> None:
    """In an ``except`` block: a disk error in one line (the driver's journal stays readable
    while the disk is full), anything else with its traceback (a bug to be found)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DISK_ERRORS):
        logger.error(what + ": %s", *args, exc)
    else:
        logger.exception(what, *args)
