"""Which damage sites a finding counts in after the office's review, kept in step with reviews.

A finding's *site types* follow its current (newest) review:

- corrected with type codes: exactly those types, each at the corrected grade, except that a
  type the vehicle also reported keeps the vehicle's grade for it (as when it arrived);
- anything else (unreviewed, confirmed, ``not_damage``, corrected to grade 0 or with no types):
  the vehicle's types, as on arrival. ``not_damage`` and grade 0 keep the finding in its sites,
  where it counts 0 and can dismiss them (``site_review``).

``resite_finding`` runs in the transaction that stores a review. It takes the finding out of
the sites of types it no longer has and adds it to a site for each new type through
``OfficeStore.join_site``: the nearest site of that type within the radius, or a new one, the
same rule as on arrival. Every site it touched is then recounted from its members (sightings,
mean position, first/last seen, last finding, max grade); a site left without members is
deleted, so a revert re-forms it around the nearest remaining site, or as a new site.
A repeated delivery of the finding never reaches here (the store only counts it), so it cannot
count a sighting twice.
"""

from __future__ import annotations

import json
from typing import Any

from sync.office.store import CURRENT_REVIEW_JOIN, OfficeStore, vehicle_site_grades


def site_grades(
    payload_json: str, verdict: str | None, reviewed_grade: int | None, reviewed_types: str | None
) -> dict[str, int]:
    """The site types of a stored finding after its current review, each with its grade."""
    vehicle = vehicle_site_grades(json.loads(payload_json))
    codes = [c for c in (reviewed_types or "").split(",") if c]
    if verdict != "corrected" or not codes:
        return vehicle
    return {c: vehicle.get(c, int(reviewed_grade or 0)) for c in sorted(codes)}


# A finding with what its sites need to know, after its current review.
_FINDING_COLUMNS = (
    "f.id, f.lat_deg, f.lon_deg, f.captured_at_utc, f.payload, r.verdict, "
    "r.grade AS reviewed_grade, r.type_codes AS reviewed_types"
)


def _grades(row: Any) -> dict[str, int]:
    return site_grades(row["payload"], row["verdict"], row["reviewed_grade"], row["reviewed_types"])


def resite_finding(store: OfficeStore, finding_id: str) -> set[int]:
    """Bring the finding's site memberships in line with its current review; returns the ids of
    the sites touched. Call inside ``store.transaction()``, after storing the review."""
    rows = store.query(
        f"SELECT {_FINDING_COLUMNS} FROM findings f {CURRENT_REVIEW_JOIN} WHERE f.id = ?",
        (finding_id,),
    )
    if not rows or rows[0]["lat_deg"] is None or rows[0]["lon_deg"] is None:
        return set()  # no position, no site
    f = rows[0]
    wanted = _grades(f)
    current = {
        r["type_code"]: r["site_id"]
        for r in store.query(
            "SELECT type_code, site_id FROM site_findings WHERE finding_id = ?", (finding_id,)
        )
    }
    touched = set(current.values())
    for type_code in current.keys() - wanted.keys():
        store.execute(
            "DELETE FROM site_findings WHERE finding_id = ? AND type_code = ?",
            (finding_id, type_code),
        )
    for type_code in sorted(wanted.keys() - current.keys()):
        touched.add(
            store.join_site(
                finding_id, type_code, f["lat_deg"], f["lon_deg"], wanted[type_code],
                f["captured_at_utc"],
            )
        )  # fmt: skip
    for site_id in sorted(touched):
        recount_site(store, site_id)
    return touched


def recount_site(store: OfficeStore, site_id: int) -> None:
    """Recompute a site's summary from its members (deleting it when it has none).

    The same figures ``join_site`` keeps up one sighting at a time: the last finding is the one
    captured last, on a tie the one that joined last.
    """
    site = store.query("SELECT type_code FROM sites WHERE id = ?", (site_id,))
    if not site:
        return
    members = store.query(
        f"SELECT {_FINDING_COLUMNS} FROM site_findings sf JOIN findings f "
        f"ON f.id = sf.finding_id {CURRENT_REVIEW_JOIN} WHERE sf.site_id = ? ORDER BY sf.rowid",
        (site_id,),
    )
    if not members:
        store.execute("DELETE FROM sites WHERE id = ?", (site_id,))
        return
    type_code = site[0]["type_code"]
    grades = [_grades(m).get(type_code, 0) for m in members]
    seen = [m["captured_at_utc"] for m in members]
    last = max(range(len(members)), key=lambda i: (seen[i], i))
    store.execute(
        "UPDATE sites SET lat_deg = ?, lon_deg = ?, sightings = ?, max_grade = ?, "
        "first_seen_utc = ?, last_seen_utc = ?, last_finding_id = ? WHERE id = ?",
        (
            sum(m["lat_deg"] for m in members) / len(members),
            sum(m["lon_deg"] for m in members) / len(members),
            len(members), max(grades), min(seen), seen[last], members[last]["id"], site_id,
        ),
    )  # fmt: skip
