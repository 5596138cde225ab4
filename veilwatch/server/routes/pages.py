"""HTML pages: the room, one camera, recordings, log-in and first-run set-up."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from veilwatch.server.auth import public
from veilwatch.server.context import CurrentViewer, camera_for, page
from veilwatch.server.services import Services


def pages(services: Services) -> APIRouter:
    """Routes of the HTML pages (their data comes from the API)."""
    router = APIRouter(default_response_class=HTMLResponse)

    @router.get("/")
    def room_page(viewer: CurrentViewer) -> HTMLResponse:
        return page("room.html")

    @router.get("/cameras/{name}")
    def camera_page(name: str, viewer: CurrentViewer) -> HTMLResponse:
        camera_for(services, name, viewer)
        return page("camera.html")

    @router.get("/recordings/{name}")
    def recordings_page(name: str, viewer: CurrentViewer) -> HTMLResponse:
        camera_for(services, name, viewer)
        return page("recordings.html")

    @router.get("/login")
    @public
    def login_page() -> HTMLResponse:
        return page("login.html")

    @router.get("/setup")
    @public
    def setup_page() -> HTMLResponse:
        if services.setup_token is None or services.users.count() > 0:
            raise HTTPException(404, "set-up is done")
        return page("setup.html")

    return router
