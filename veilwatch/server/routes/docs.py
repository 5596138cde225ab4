"""The API's documentation at `/docs`: Swagger UI from the `swagger-ui-bundle` package, never from a CDN.

FastAPI's own `/docs` (and `/redoc`) load their scripts from a CDN: blank offline, and a third party's
code in a page of this server. Here the page and its two assets come from this server, for signed-in
users as before, under a content security policy that allows nothing else.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from veilwatch.server.context import PAGE_HEADERS, STATIC
from veilwatch.server.deps import CurrentViewer

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
# Swagger UI sets inline styles and draws its icons as data: images; scripts stay this server's only.
DOCS_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


def swagger_folder() -> Traversable:
    """The folder of Swagger UI's files inside the installed `swagger-ui-bundle` package."""
    vendor = resources.files("swagger_ui_bundle") / "vendor"
    folders = sorted(item.name for item in vendor.iterdir() if item.name.startswith("swagger-ui-"))
    return vendor / folders[-1]


def docs() -> APIRouter:
    """Routes of the API documentation (they need a session, like every route not declared public)."""
    router = APIRouter()

    @router.get("/docs", response_class=HTMLResponse)
    def docs_page(viewer: CurrentViewer) -> HTMLResponse:
        return HTMLResponse((STATIC / "docs.html").read_text(encoding="utf-8"), headers=DOCS_HEADERS)

    @router.get("/docs/assets/{file_name}")
    def docs_asset(file_name: str, viewer: CurrentViewer) -> Response:
        media = ASSETS.get(file_name)
        if media is None:  # only these files: no path of the caller's choosing is opened
            raise HTTPException(404, "no such file")
        data = (swagger_folder() / file_name).read_bytes()
        headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=media, headers=headers)

    return router
