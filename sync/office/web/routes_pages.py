"""The console's pages (login, map, review queue, damage site, accounts) and its exports."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sync.office.console_db import (
    audit_trail,
    list_users,
    repair_state,
    set_user_disabled,
    work_orders,
)
from sync.office.console_map import site_member_where
from sync.office.export import (
    FINDING_COLUMNS,
    SITE_COLUMNS,
    feature_collection,
    finding_rows,
    write_csv,
)
from sync.office.repairs import NEXT_STATES, RepairError, reopen_resighted
from sync.office.review import TYPE_CODES
from sync.office.web.app import render
from sync.office.web.auth import check_password, csrf_ok, needs, safe_next, start_session
from sync.office.web.filters import FilterError
from sync.office.web.i18n import choose_lang, labels
from sync.office.web.routes_api import _console, change_repair, findings_for, sites_for

WORK_ORDER_COLUMNS = (
    "site_id", "type_code", "lat_deg", "lon_deg", "max_grade", "state", "assignee", "due_date",
    "repaired_at_utc", "repaired_by", "note", "updated_by", "updated_at_utc",
)  # fmt: skip


async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"next": safe_next(request.query_params.get("next"))})


async def login(request: Request) -> Response:
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
    console = _console(request)
    wait_s = console.throttle.wait_s(name)
    t = labels(choose_lang(request))
    if wait_s > 0:
        # Locked: not even the right password is checked until the wait is over.
        locked = render(request, "login.html", {"next": target, "error": t["login_locked"]}, 429)
        locked.headers["retry-after"] = str(int(wait_s) + 1)
        return locked
    user = check_password(console.store, name, password)
    if user is None:
        console.throttle.failed(name)
        return render(request, "login.html", {"next": target, "error": t["login_failed"]}, 401)
    console.throttle.succeeded(name)
    start_session(request, user)
    return RedirectResponse(target, status_code=303)


@needs("viewer", write=True)
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _page_config(request: Request) -> str:
    """Settings and labels for the page's script, as JSON inside a non-executed script tag."""
    console = _console(request)
    m = console.config.map
    lang = choose_lang(request)
    doc: dict[str, Any] = {
        "tiles_url": m.tiles_url, "attribution": m.tiles_attribution, "max_zoom": m.max_zoom,
        "center": [m.center_lat_deg, m.center_lon_deg], "zoom": m.start_zoom,
        "poll_ms": int(m.poll_interval_s * 1000), "cluster_above": m.cluster_above,
        "lang": lang, "t": labels(lang), "types": list(TYPE_CODES),
        "can_review": request.state.user.role in ("reviewer", "admin"),
    }  # fmt: skip
    # "</" cannot end the script element early: the JSON stays data.
    return json.dumps(doc, ensure_ascii=False).replace("</", "<\\/")


@needs("viewer")
async def map_page(request: Request) -> Response:
    return render(request, "map.html", {"config_json": _page_config(request), "types": TYPE_CODES})


@needs("viewer")
async def queue_page(request: Request) -> Response:
    return render(request, "queue.html", {"config_json": _page_config(request)})


@needs("viewer")
async def site_page(request: Request) -> Response:
    store = _console(request).store
    site_id = int(request.path_params["site_id"])
    reopen_resighted(store)
    sites = [s for s in sites_for(request) if s["site_id"] == site_id]
    if not sites:
        return render(request, "error.html", {"message": f"site {site_id}"}, 404)
    state = repair_state(store, site_id)
    return render(request, "site.html", {
        "site": sites[0], "state": state, "next_states": NEXT_STATES[state["state"]],
        "trail": audit_trail(store, site_id),
        "findings": findings_of_site(request, site_id),
        "error": request.query_params.get("error", ""),
    })  # fmt: skip


def findings_of_site(request: Request, site_id: int) -> list[dict[str, Any]]:
    return finding_rows(_console(request).store, where=site_member_where(site_id))


@needs("reviewer", write=True)
async def site_repair_form(request: Request) -> Response:
    site_id = int(request.path_params["site_id"])
    form = await request.form()
    doc = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        change_repair(_console(request).store, site_id, doc, request.state.user.name)
    except RepairError as exc:
        return RedirectResponse(f"/sites/{site_id}?error={quote(str(exc))}", status_code=303)
    return RedirectResponse(f"/sites/{site_id}", status_code=303)


@needs("viewer")
async def export(request: Request) -> Response:
    what = request.path_params["what"]
    columns: tuple[str, ...]
    try:
        if what in ("sites.csv", "sites.geojson"):
            rows, columns = sites_for(request), SITE_COLUMNS
        elif what in ("findings.csv", "findings.geojson"):
            rows, columns = findings_for(request), FINDING_COLUMNS
        elif what == "work-orders.csv":
            rows, columns = work_orders(_console(request).store), WORK_ORDER_COLUMNS
        else:
            return JSONResponse({"error": f"no export {what!r}"}, status_code=404)
    except FilterError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    disposition = {"content-disposition": f'attachment; filename="{what}"'}
    if what.endswith(".geojson"):
        body = json.dumps(feature_collection([{c: r[c] for c in columns} for r in rows]),
                          ensure_ascii=False)  # fmt: skip
        return Response(body, media_type="application/geo+json", headers=disposition)
    out = io.StringIO()
    write_csv([{c: r[c] for c in columns} for r in rows], columns, out)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=disposition)


@needs("admin")
async def users_page(request: Request) -> Response:
    return render(request, "users.html", {"users": list_users(_console(request).store)})


@needs("admin", write=True)
async def user_disabled(request: Request) -> Response:
    """Disable or enable an account (form field ``disabled`` = 1 or 0); not one's own."""
    name = request.path_params["name"]
    form = await request.form()
    if name == request.state.user.name:
        return JSONResponse({"error": "an admin cannot disable their own account"}, 409)
    disabled = str(form.get("disabled", "1")) == "1"
    if not set_user_disabled(_console(request).store, name, disabled, request.state.user.name):
        return JSONResponse({"error": f"no user {name!r}"}, status_code=404)
    return RedirectResponse("/admin/users", status_code=303)
