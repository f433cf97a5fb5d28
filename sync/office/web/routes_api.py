"""The console's JSON API (a stable interface, see the README): findings and sites as GeoJSON
with the columns of ``office export``, the map's clusters and tracks, one finding's detail,
reviews and repair changes."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from edge.wire.ids import FINDING_ID_RE
from sync.office.console_db import repair_states
from sync.office.console_map import (
    check_readable,
    cluster_findings,
    distinct_values,
    finding_detail,
    finding_id_where,
    finding_where,
    image_vehicle,
    latest_received,
    site_where,
    track_points,
)
from sync.office.export import feature_collection, finding_rows, site_rows
from sync.office.repairs import RepairError, reopen_resighted, set_repair_state
from sync.office.review import ReviewError, add_review, parse_type_codes, review_history
from sync.office.store_api import DATABASE_ERRORS, OfficeStore
from sync.office.web.app import Console
from sync.office.web.auth import needs
from sync.office.web.coverage import coverage, track_lines, tracks_geojson
from sync.office.web.filters import FilterError, parse_filter

MAX_JSON_BODY = 64 * 1024


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def healthz(request: Request) -> Response:
    try:
        check_readable(_console(request).store)
    except DATABASE_ERRORS as exc:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
    return JSONResponse({"ok": True})


def findings_for(request: Request) -> list[dict[str, Any]]:
    """The export's finding rows the request's filter selects (FilterError when it is bad)."""
    flt = parse_filter(request.query_params)
    store = _console(request).store
    return finding_rows(store, where=finding_where(store, flt))


def sites_for(request: Request) -> list[dict[str, Any]]:
    """The export's site rows the filter selects, with their repair state."""
    store = _console(request).store
    flt = parse_filter(request.query_params)
    reopen_resighted(store)
    rows = site_rows(store, where=site_where(store, flt))
    if flt.grades:
        rows = [r for r in rows if r["office_grade"] in flt.grades]
    if flt.review_states:
        rows = [r for r in rows if (r["review_verdict"] or "unreviewed") in flt.review_states]
    states = repair_states(store)
    for r in rows:
        state = states.get(r["site_id"], {})
        r["repair_state"] = state.get("state", "new")
        r["reopened"] = bool(state.get("reopened", 0))
    return rows


@needs("viewer")
async def api_findings(request: Request) -> Response:
    try:
        rows = findings_for(request)
    except FilterError as exc:
        return _bad(str(exc))
    doc = feature_collection(rows)
    doc["latest_received_utc"] = latest_received(_console(request).store)
    return JSONResponse(doc)


@needs("viewer")
async def api_sites(request: Request) -> Response:
    try:
        return JSONResponse(feature_collection(sites_for(request)))
    except FilterError as exc:
        return _bad(str(exc))


@needs("viewer")
async def api_clusters(request: Request) -> Response:
    """Findings in view grouped on the server for a zoomed-out map: ``cell_deg`` wide cells."""
    try:
        flt = parse_filter(request.query_params)
        cell = float(request.query_params.get("cell_deg", "0.01"))
    except (FilterError, ValueError) as exc:
        return _bad(str(exc))
    if not 1e-5 <= cell <= 10:
        return _bad(f"cell_deg={cell}: expected 0.00001 to 10")
    clusters = cluster_findings(_console(request).store, flt, cell)
    return JSONResponse({"total": sum(c["n"] for c in clusters), "clusters": clusters,
                         "latest_received_utc": latest_received(_console(request).store)})


@needs("viewer")
async def api_queue(request: Request) -> Response:
    """The review queue: most urgent first (office grade, then oldest), as `review --list`."""
    try:
        rows = findings_for(request)
    except FilterError as exc:
        return _bad(str(exc))
    rows.sort(key=lambda r: (-r["office_grade"], r["captured_at_utc"], r["id"]))
    return JSONResponse([r["id"] for r in rows])


@needs("viewer")
async def api_finding(request: Request) -> Response:
    fid = request.path_params["finding_id"]
    store = _console(request).store
    rows = finding_rows(store, where=finding_id_where(fid)) if FINDING_ID_RE.match(fid) else []
    detail = finding_detail(store, fid) if rows else None
    if not rows or detail is None:
        return _bad(f"finding {fid!r}: no such finding", 404)
    history = [r.as_dict() for r in review_history(store, fid)]
    return JSONResponse({**rows[0], **detail, "reviews": history,
                         "has_image": rows[0]["image_path"] is not None})  # fmt: skip


@needs("viewer")
async def api_tracks(request: Request) -> Response:
    console = _console(request)
    try:
        flt = parse_filter(request.query_params)
    except FilterError as exc:
        return _bad(str(exc))
    lines = track_lines(track_points(console.store, flt))
    cov = coverage(lines, console.roads)
    figures = {"driven_km": cov.driven_km, "road_km": cov.road_km, "road_share": cov.road_share}
    return JSONResponse({**tracks_geojson(lines), "coverage": figures})


@needs("viewer")
async def api_choices(request: Request) -> Response:
    return JSONResponse(distinct_values(_console(request).store))


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_JSON_BODY:
        raise ValueError(f"body of {len(body)} bytes exceeds {MAX_JSON_BODY}")
    doc = json.loads(body or b"{}")
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    return doc


@needs("reviewer", write=True)
async def api_reviews(request: Request) -> Response:
    """``{"finding_id", "verdict": confirmed|corrected|not_damage, "grade", "type_codes",
    "note"}``; the reviewer is the logged-in user."""
    store = _console(request).store
    try:
        doc = await _json_body(request)
        types = doc.get("type_codes")
        if isinstance(types, list):
            types = parse_type_codes(",".join(str(t) for t in types)) if types else ()
        elif types is not None:
            raise ReviewError("type_codes: expected a list of type codes")
        grade = doc.get("grade")
        if grade is not None and (not isinstance(grade, int) or isinstance(grade, bool)):
            raise ReviewError(f"grade {grade!r}: expected 0, 1, 2 or 3")
        review = add_review(
            store, str(doc.get("finding_id", "")), str(doc.get("verdict", "")),
            reviewer=request.state.user.name, grade=grade, type_codes=types,
            note=str(doc.get("note", ""))[:2000],
        )  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:  # ReviewError and bad JSON
        missing = isinstance(exc, ReviewError) and "no such finding" in str(exc)
        return _bad(str(exc), 404 if missing else 400)
    office = finding_rows(store, where=finding_id_where(review.finding_id))[0]
    return JSONResponse({**review.as_dict(), "office_grade": office["office_grade"],
                         "reviews": len(review_history(store, review.finding_id))})  # fmt: skip


def change_repair(store: OfficeStore, site_id: int, doc: dict[str, Any], actor: str) -> Any:
    fields = {k: str(doc.get(k, "")) for k in ("assignee", "due_date", "repaired_on",
                                               "repaired_by", "note")}  # fmt: skip
    return set_repair_state(store, site_id, str(doc.get("state", "")), actor, fields)


@needs("reviewer", write=True)
async def api_repair(request: Request) -> Response:
    """``{"state", "assignee", "due_date", "repaired_on", "repaired_by", "note"}``."""
    try:
        doc = await _json_body(request)
        row = change_repair(_console(request).store, int(request.path_params["site_id"]), doc,
                            request.state.user.name)  # fmt: skip
    except RepairError as exc:
        return _bad(str(exc), 404 if "no such damage site" in str(exc) else 409)
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad(str(exc))
    return JSONResponse(row)


@needs("viewer")
async def image(request: Request) -> Response:
    """A finding's photo; the name must be ``<finding id>.jpg`` with a stored image, else 404."""
    name = request.path_params["name"]
    fid = name[:-4] if name.endswith(".jpg") else ""
    store = _console(request).store
    if not FINDING_ID_RE.match(fid):
        return _bad("no such image", 404)
    vehicle_id = image_vehicle(store, fid)
    if vehicle_id is None:
        return _bad("no such image", 404)
    try:
        path = store.image_path_for(vehicle_id, fid)
    except ValueError:
        return _bad("no such image", 404)
    if not path.is_file():
        return _bad("no such image", 404)
    return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "private"})
