"""How the office's reviews of findings carry over to the damage sites those findings formed.

Sites are formed at ingest from what the vehicles said, one per damage type and place; a
correction that names types moves the finding to sites of those types (``site_membership``),
while ``not_damage`` and a correction to grade 0 leave it where it was. For a site of type T,
each of its findings counts with:

- unreviewed or confirmed: the vehicle's grade for T (as at ingest);
- corrected: the corrected grade (membership guarantees the correction names T, or the site is
  the finding's own: a crew-marked ``manual`` site, or one it stays in at grade 0), else 0;
- not_damage: 0.

The site's ``office_grade`` is the highest of these. A site every sighting of which the office
reviewed away to 0 is *dismissed*: ``office export --sites`` leaves it out (its findings stay in
the per-finding export with their verdicts). The review columns of a site are those of the newest
review among its findings; ``reviewed_sightings`` counts its findings that have a review.
"""

from __future__ import annotations

from typing import Any

from sync.office.review import REVIEW_COLUMNS, vehicle_damages
from sync.office.store import CURRENT_REVIEW_JOIN, MANUAL_TYPE, OfficeStore

SITE_REVIEW_COLUMNS = (*REVIEW_COLUMNS, "reviewed_sightings")
_REVIEW_FIELDS = REVIEW_COLUMNS[:-1]  # all but office_grade, which a site computes itself


def sighting_grade(
    site_type: str,
    vehicle_grade: int,
    payload_json: str,
    verdict: str | None,
    reviewed_grade: int | None,
    reviewed_types: str | None,
) -> int:
    """What one finding says about a site of ``site_type``, after its current review."""
    if verdict == "not_damage":
        return 0
    if verdict == "corrected":
        named = site_type == MANUAL_TYPE or site_type in (reviewed_types or "").split(",")
        return int(reviewed_grade or 0) if named else 0
    return max(
        (d["grade"] for d in vehicle_damages(payload_json) if d["type_code"] == site_type),
        default=vehicle_grade,
    )


def review_sites(store: OfficeStore, sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sites`` (rows with site_id, type_code, max_grade) with the review columns and
    ``dismissed`` added. Only sites with a reviewed finding cost more than a dictionary update."""
    rows = store.query(
        "SELECT sf.site_id, sf.type_code, f.grade, f.payload, r.id AS review_id, r.verdict, "
        "r.grade AS reviewed_grade, r.type_codes AS reviewed_types, r.reviewer, "
        "r.reviewed_at_utc "
        f"FROM site_findings sf JOIN findings f ON f.id = sf.finding_id {CURRENT_REVIEW_JOIN} "
        "WHERE sf.site_id IN (SELECT sf2.site_id FROM site_findings sf2 "
        "  JOIN reviews r2 ON r2.finding_id = sf2.finding_id)"
    )
    by_site: dict[int, list[Any]] = {}
    for row in rows:
        by_site.setdefault(row["site_id"], []).append(row)
    out = []
    for site in sites:
        found = by_site.get(site["site_id"], [])
        reviewed = [r for r in found if r["review_id"] is not None]
        site = {**site, **dict.fromkeys(_REVIEW_FIELDS), "reviewed_sightings": len(reviewed)}
        if not reviewed:
            out.append({**site, "office_grade": site["max_grade"], "dismissed": False})
            continue
        newest = max(reviewed, key=lambda r: r["review_id"])
        grade = max(
            sighting_grade(
                site["type_code"], r["grade"], r["payload"], r["verdict"],
                r["reviewed_grade"], r["reviewed_types"],
            )
            for r in found
        )  # fmt: skip
        site.update(
            review_verdict=newest["verdict"],
            reviewed_grade=newest["reviewed_grade"],
            reviewed_types=newest["reviewed_types"],
            reviewed_by=newest["reviewer"],
            reviewed_at_utc=newest["reviewed_at_utc"],
        )
        out.append({**site, "office_grade": grade, "dismissed": grade == 0})
    return out
