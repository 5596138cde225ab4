"""HTML pages: the room, one camera, recordings, log-in and first-run set-up."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from veilwatch.server.auth import public
from veilwatch.server.context import page
from veilwatch.server.deps import CurrentViewer, SetupDep, ViewedCamera


def pages() -> APIRouter:
    """Routes of the HTML pages (their data comes from the API)."""
    router = APIRouter(default_response_class=HTMLResponse)

    @router.get("/")
    def room_page(viewer: CurrentViewer) -> HTMLResponse:
        return page("room.html")

    @router.get("/cameras/{name}")
    def camera_page(camera: ViewedCamera) -> HTMLResponse:
        return page("camera.html")

    @router.get("/recordings/{name}")
    def recordings_page(camera: ViewedCamera) -> HTMLResponse:
        return page("recordings.html")

    @router.get("/login")
    @public
    def login_page() -> HTMLResponse:
        return page("login.html")

    @router.get("/setup")
    @public
    def setup_page(setup: SetupDep) -> HTMLResponse:
        if not setup.is_open():
            raise HTTPException(404, "set-up is done")
        return page("setup.html")

    return router
