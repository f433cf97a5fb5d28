"""The console's URL map."""

from __future__ import annotations

from starlette.routing import Route

from sync.office.web import routes_api as api
from sync.office.web import routes_pages as pages

ROUTES = [
    Route("/healthz", api.healthz),
    Route("/login", pages.login_page, methods=["GET"]),
    Route("/login", pages.login, methods=["POST"]),
    Route("/logout", pages.logout, methods=["POST"]),
    Route("/", pages.map_page),
    Route("/queue", pages.queue_page),
    Route("/sites/{site_id:int}", pages.site_page),
    Route("/sites/{site_id:int}/repair", pages.site_repair_form, methods=["POST"]),
    Route("/export/{what}", pages.export),
    Route("/admin/users", pages.users_page),
    Route("/admin/users/{name}/disabled", pages.user_disabled, methods=["POST"]),
    Route("/api/findings", api.api_findings),
    Route("/api/findings/{finding_id}", api.api_finding),
    Route("/api/sites", api.api_sites),
    Route("/api/sites/{site_id:int}/repair", api.api_repair, methods=["POST"]),
    Route("/api/clusters", api.api_clusters),
    Route("/api/queue", api.api_queue),
    Route("/api/tracks", api.api_tracks),
    Route("/api/choices", api.api_choices),
    Route("/api/reviews", api.api_reviews, methods=["POST"]),
    Route("/images/{name}", api.image),
]
