"""The repair workflow of a damage site: new → confirmed → scheduled → repaired → closed.

``scheduled`` carries the work order (who, due date); ``repaired`` the date, who did it and a
note. A step back is allowed (a work order cancelled, a repair found wanting), and ``closed``
or ``repaired`` go back to ``new`` when the damage is seen again: ``reopen_resighted`` finds
sites whose newest sighting was captured after the repair (a repair date without a time counts
to the end of that day) and reopens them, marked ``reopened`` and written to the audit trail
as done by ``system`` with the finding that showed it. Every change is an audit row with user
and time (``console_db``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from edge.wire.serialize import format_utc
from sync.office.console_db import (
    REPAIR_STATES,
    repair_state,
    sightings_after_repair,
    site_exists,
    write_repair_state,
)
from sync.office.export import parse_since
from sync.office.store_api import OfficeStore

NEXT_STATES = {
    "new": ("confirmed",),
    "confirmed": ("scheduled", "new"),
    "scheduled": ("repaired", "confirmed"),
    "repaired": ("closed", "scheduled"),
    "closed": ("new",),
}
SYSTEM_ACTOR = "system"


class RepairError(ValueError):
    """A repair change that cannot be made; the message names the field."""


def _repaired_at(text: str) -> str:
    """A repair date (or time) as the stored UTC text; a bare date means its end."""
    if not text:
        raise RepairError("repaired_on: give the date of the repair")
    try:
        if "T" not in text:
            return format_utc_day_end(date.fromisoformat(text))
        return parse_since(text)
    except ValueError:
        raise RepairError(f"repaired_on {text!r}: expected a date such as 2024-05-01") from None


def format_utc_day_end(day: date) -> str:
    return format_utc(datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC))


def set_repair_state(
    store: OfficeStore, site_id: int, state: str, actor: str, fields: dict[str, str]
) -> dict[str, Any]:
    """Move a site to ``state``; ``fields`` may hold assignee, due_date, repaired_on,
    repaired_by, note. Returns the new state row; RepairError changes nothing."""
    if not site_exists(store, site_id):
        raise RepairError(f"site {site_id}: no such damage site")
    if state not in REPAIR_STATES:
        raise RepairError(f"state {state!r}: expected one of {', '.join(REPAIR_STATES)}")
    current = repair_state(store, site_id)
    if state not in NEXT_STATES[current["state"]]:
        raise RepairError(
            f"site {site_id} is {current['state']}: it can go to "
            f"{' or '.join(NEXT_STATES[current['state']])}, not {state}"
        )
    row = {**current, "state": state, "note": fields.get("note", "").strip(), "reopened": 0}
    if state == "scheduled":
        row["assignee"] = fields.get("assignee", "").strip()
        row["due_date"] = fields.get("due_date", "").strip()
        if not row["assignee"]:
            raise RepairError("assignee: a work order needs someone to do it")
        try:
            date.fromisoformat(row["due_date"])
        except ValueError:
            raise RepairError(f"due_date {row['due_date']!r}: expected a date such as "
                              "2024-05-01") from None  # fmt: skip
    if state == "repaired":
        row["repaired_at_utc"] = _repaired_at(fields.get("repaired_on", "").strip())
        row["repaired_by"] = fields.get("repaired_by", "").strip()
        if not row["repaired_by"]:
            raise RepairError("repaired_by: say who repaired it")
    if state == "new":
        row.update(assignee="", due_date="", repaired_at_utc="", repaired_by="")
    write_repair_state(store, row, actor, "repair_state")
    return repair_state(store, site_id)


def reopen_resighted(store: OfficeStore) -> list[int]:
    """Reopen repaired or closed sites seen again after their repair; returns their ids."""
    reopened = []
    for hit in sightings_after_repair(store):
        note = f"finding {hit['finding_id']} captured {hit['captured_at_utc']}"
        row = {**repair_state(store, hit["site_id"]), "state": "new", "reopened": 1, "note": note}
        write_repair_state(store, row, SYSTEM_ACTOR, "reopened")
        reopened.append(int(hit["site_id"]))
    return reopened
