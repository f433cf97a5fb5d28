"""The console's ASGI application: ``create_app`` wires the store, the settings, the routes,
the signed-cookie sessions and the static files (Leaflet from the xstatic wheels, nothing from
a CDN).

Database work runs in the event loop's thread, one request at a time, on the one connection the
store holds (SQLite serialises writes anyway, and each query here is short); password hashing
is the slow part of a login and is rare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet as xs_leaflet
import xstatic.pkg.leaflet_markercluster as xs_cluster
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.office.console_db import (
    ensure_console_tables,
    session_secret,
)
from sync.office.repairs import reopen_resighted
from sync.office.store_api import OfficeStore, open_store
from sync.office.web.auth import LoginThrottle, csrf_token
from sync.office.web.config import ConsoleConfig
from sync.office.web.i18n import choose_lang, labels

log = logging.getLogger("sync.office.web")
HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


@dataclass
class Console:
    """What the routes share (``request.app.state.console``)."""

    store: OfficeStore
    config: ConsoleConfig
    throttle: LoginThrottle
    roads: list[list[tuple[float, float]]] | None


def create_app(
    db: str | Path,
    images: Path,
    config: ConsoleConfig,
    *,
    roads: list[list[tuple[float, float]]] | None = None,
) -> Starlette:
    """The console on the office database ``db`` (an ``open_store`` spec; a SQLite file must
    exist) and its images folder."""
    store = open_store(db, images, site_radius_m=config.site_radius_m)
    ensure_console_tables(store)
    security = config.security
    console = Console(
        store, config, LoginThrottle(security.login_max_failures, security.login_lockout_s), roads
    )
    from sync.office.web.routes import ROUTES  # the routes use this module: import when built

    static = [
        Mount("/static/leaflet", StaticFiles(directory=xs_leaflet.BASE_DIR), name="leaflet"),
        Mount("/static/markercluster", StaticFiles(directory=xs_cluster.BASE_DIR),
              name="markercluster"),
        Mount("/static/console", StaticFiles(directory=HERE / "static"), name="console"),
    ]  # fmt: skip
    middleware = [
        Middleware(_SecurityHeaders, tiles_url=config.map.tiles_url),
        Middleware(
            SessionMiddleware,
            secret_key=session_secret(store, secrets.token_urlsafe(48)),
            session_cookie="roadpatrol_console",
            max_age=security.session_max_age_s,
            same_site="lax",
            https_only=security.cookie_secure,
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_reopen_loop(console))
        try:
            yield
        finally:
            task.cancel()
            store.close()

    app = Starlette(routes=[*ROUTES, *static], middleware=middleware, lifespan=lifespan)
    app.state.console = console
    app.state.store = store
    return app


async def _reopen_loop(console: Console) -> None:
    """Reopen repaired sites seen again, also while nobody looks at them."""
    while True:
        try:
            reopen_resighted(console.store)
        except Exception as exc:  # a locked database now and then must not end the loop
            log.warning("cannot check repaired sites for new sightings: %s", exc)
        await asyncio.sleep(console.config.map.poll_interval_s)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    lang = choose_lang(request)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "t": labels(lang),
            "lang": lang,
            "csrf": csrf_token(request),
            "user": getattr(request.state, "user", None),
            **context,
        },
        status_code=status,
    )


class _SecurityHeaders:
    """Headers on every answer: no framing, no sniffing, scripts only from this site, images
    from here and the tile server."""

    def __init__(self, app: ASGIApp, tiles_url: str) -> None:
        self.app = app
        origin = "/".join(tiles_url.split("/")[:3]) if "://" in tiles_url else ""
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: {origin}".strip() + "; frame-ancestors 'none'; "
            "form-action 'self'; base-uri 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
