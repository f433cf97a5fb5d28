"""What is wrong with a path the config names, in the words a technician needs.

"no such file" for a folder that is there sends the technician looking for the wrong thing,
so a folder where a file is wanted is "is a directory", and a file where a folder is wanted
is "is a file, not a folder". ``data_dir`` is checked by `config check` and by `run` alike: the
recorder cannot keep anything without it, so `run` refuses to start rather than traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


def path_problem(field: str, path: Path, *, folder: bool) -> str | None:
    """``field: path: why`` when ``path`` is not the existing file (or folder) wanted."""
    if folder:
        if path.is_dir():
            return None
        why = "is a file, not a folder" if path.exists() else "no such folder"
    else:
        if path.is_file():
            return None
        why = "is a directory, not a file" if path.is_dir() else "no such file"
    return f"{field}: {path}: {why}"


def data_dir_problem(path: Path) -> str | None:
    """Why ``vehicle.data_dir`` cannot hold the outbox (it may not exist yet: it is created)."""
    field = "vehicle.data_dir"
    if path.exists():
        if not path.is_dir():
            return f"{field}: {path}: is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{field}: {path}: not writable by this user"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{field}: {path}: cannot be created, {parent} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{field}: {path}: cannot be created in {parent} (not writable by this user)"
    return None
