"""Playback of veiled recordings, by camera and time; staff only, and every playback is recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from veilwatch.server.auth import Viewer
from veilwatch.server.context import STAFF_ROLES, CurrentViewer, camera_for, may_view
from veilwatch.server.services import Services


def recordings(services: Services) -> APIRouter:
    """Routes of the recordings."""
    router = APIRouter(prefix="/api")

    @router.get("/cameras/{name}/recordings")
    def segments(
        name: str, viewer: CurrentViewer, start: float = 0.0, end: float | None = None
    ) -> list[dict[str, Any]]:
        camera = camera_for(services, name, viewer)
        _may_play(viewer)
        until = end if end is not None else time.time() + 60
        return [
            {"id": s.id, "start": s.start_at, "end": s.end_at, "bytes": s.bytes, "frames": s.frames}
            for s in services.segments.list(camera.name, start, until)
            if s.status == "complete"
        ]

    @router.get("/recordings/{segment_id}.mp4")
    def segment_file(segment_id: int, viewer: CurrentViewer) -> FileResponse:
        segment = services.segments.get(segment_id)
        camera = services.config.camera(segment.camera) if segment else None
        if segment is None or camera is None or not may_view(camera, viewer) or segment.status != "complete":
            raise HTTPException(404, "no such recording")
        _may_play(viewer)
        services.record("playback", viewer.name, viewer.role, camera.name, segment=segment_id)
        path = _inside(services.config.server.data_dir, services.segments.absolute(segment.path))
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    return router


def _may_play(viewer: Viewer) -> None:
    if viewer.role not in STAFF_ROLES:
        raise HTTPException(403, "recordings are for staff")


def _inside(root: Path, path: Path) -> Path:
    """The path, if it lies inside root once links are resolved (nothing outside the data folder)."""
    resolved, base = path.resolve(), root.resolve()
    if base not in resolved.parents:
        raise HTTPException(404, "no such recording")
    return resolved
