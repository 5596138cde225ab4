"""What every route needs: who is asking, which cameras they may see, and safe page responses."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, field_validator

from veilwatch.config import CameraConfig
from veilwatch.server.auth import Viewer
from veilwatch.server.services import Services

STATIC = resources.files("veilwatch.server") / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self'; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
STAFF_ROLES = frozenset({"operator", "auditor", "admin"})


class RequestBody(BaseModel):
    """A JSON request body: no NaN or infinities, and only text that is valid Unicode (no lone surrogates)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _unicode_text(cls, value: object) -> object:
        # JSON may spell a lone surrogate ("\ud800"); it cannot be hashed, stored or logged as UTF-8.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid Unicode text (a lone surrogate)") from None
        return value


def _viewer(request: Request) -> Viewer:
    viewer = request.scope.get("state", {}).get("viewer")
    if not isinstance(viewer, Viewer):  # the auth middleware sets it on every non-public route
        raise HTTPException(401, "log in first")
    return viewer


CurrentViewer = Annotated[Viewer, Depends(_viewer)]


def viewer_lookup(services: Services) -> Callable[[str], Viewer | None]:
    """Session token → the viewer behind it, or None when unknown, expired or revoked."""

    def lookup(token: str) -> Viewer | None:
        active = services.sessions.lookup(token)
        if active is None:
            return None
        return Viewer(active.user.id, active.user.name, str(active.user.role), active.csrf_token, token)

    return lookup


def may_view(camera: CameraConfig, viewer: Viewer) -> bool:
    """Whether this viewer's role may watch this camera (admins may watch every camera)."""
    return viewer.role == "admin" or viewer.role in camera.viewers


def camera_for(services: Services, name: str, viewer: Viewer) -> CameraConfig:
    """The camera, if it exists and this viewer may see it; else 404 (no probing which exist)."""
    camera = services.config.camera(name)
    if camera is None or not may_view(camera, viewer):
        # A refused camera is logged like any refusal, yet answered like a missing one (no probing).
        asked = name if camera is not None else None  # an unknown name is not written into the public log
        services.record("auth.denied", viewer.name, viewer.role, None, camera_asked=asked, status=404)
        raise HTTPException(404, "no such camera")
    return camera


def page(name: str) -> HTMLResponse:
    """A static HTML page with a strict content security policy."""
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS)
