"""Playback and export of veiled recordings, by camera and time; staff only, every use recorded.

An export is a veiled clip cut from the recordings (re-encoded, no tags) and a manifest that ties
its SHA-256 to the export's entry in the tamper-evident log, with an inclusion proof and a signed
checkpoint: `veilwatch audit verify-export CLIP MANIFEST --key VKEY` checks it offline. The work is
`ExportService`'s; these routes check who asks and answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel

from veilwatch.access import may_export, may_play_back
from veilwatch.errors import StorageError
from veilwatch.server.auth import Viewer
from veilwatch.server.context import RequestBody
from veilwatch.server.deps import (
    CamerasDep,
    CurrentViewer,
    ExportsDep,
    RecorderDep,
    SegmentsDep,
    ViewedCamera,
    see_camera,
)
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.paths import confined

# SQLite integers are 64-bit: a larger id must be refused as a bad request, not overflow in the query.
SegmentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ExportBody(RequestBody):
    """A time range of one camera's recordings to export (UTC seconds)."""

    start: float
    end: float


class SegmentOut(BaseModel):
    """One complete recorded segment."""

    id: int
    start: float
    end: float
    bytes: int
    frames: int


class ExportOut(BaseModel):
    """A finished export: where to fetch clip and manifest, and the log entry that proves it."""

    id: str
    sha256: str
    frames: int
    clip_url: str
    manifest_url: str
    log_index: int


def recordings() -> APIRouter:
    """Routes of the recordings."""
    router = APIRouter(prefix="/api")

    @router.get("/cameras/{name}/recordings")
    def segments(
        camera: ViewedCamera, viewer: CurrentViewer, index: SegmentsDep, start: float = 0.0, end: float | None = None
    ) -> list[SegmentOut]:
        _may_play(viewer)
        until = end if end is not None else time.time() + 60
        return [
            SegmentOut(id=s.id, start=s.start_at, end=s.end_at, bytes=s.bytes, frames=s.frames)
            for s in index.list(camera.name, start, until)
            if s.status == "complete"
        ]

    @router.get("/recordings/{segment_id}.mp4")
    def segment_file(
        segment_id: SegmentId, viewer: CurrentViewer, index: SegmentsDep, cameras: CamerasDep, recorder: RecorderDep
    ) -> FileResponse:
        segment = index.get(segment_id)
        camera = cameras.get(segment.camera) if segment else None
        if segment is None or camera is None or not camera.may_view(viewer.role) or segment.status != "complete":
            raise HTTPException(404, "no such recording")
        _may_play(viewer)
        recorder.record(ActionKind.PLAYBACK, viewer.name, viewer.role, camera.name, segment=segment_id)
        try:
            path = confined(index.data_dir, segment.path)
        except StorageError as exc:
            raise HTTPException(404, "no such recording") from exc
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    _exporting(router)
    return router


def _exporting(router: APIRouter) -> None:
    """Routes of exports: make one, fetch its files."""

    @router.post("/cameras/{name}/exports")
    async def export(camera: ViewedCamera, body: ExportBody, viewer: CurrentViewer, exports: ExportsDep) -> ExportOut:
        if not may_export(viewer.role):
            raise HTTPException(403, "recordings are for staff")
        end = min(body.end, time.time())  # nothing is recorded in the future
        try:  # encoding takes a while: off the event loop, and under no lock anyone else needs
            made = await asyncio.to_thread(
                exports.start, camera.name, camera.config.fps, body.start, end, viewer.name, viewer.role
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        except StorageError as exc:
            raise HTTPException(404, exc.one_line()) from exc
        return ExportOut(
            id=made.id, sha256=made.sha256, frames=made.frames, log_index=made.log_index,
            clip_url=f"/api/exports/{made.id}.mp4", manifest_url=f"/api/exports/{made.id}.manifest.json",
        )  # fmt: skip

    @router.get("/exports/{file_name}")
    def export_file(
        file_name: str, viewer: CurrentViewer, exports: ExportsDep, cameras: CamerasDep, recorder: RecorderDep
    ) -> FileResponse:
        if not may_export(viewer.role):
            raise HTTPException(403, "recordings are for staff")
        found = exports.find(file_name)
        if found is None:
            raise HTTPException(404, "no such export")
        # Export ids are in the public log: the camera's viewers decide, as for its recordings.
        see_camera(cameras, recorder, found.camera, viewer)
        exports.fetched(found, viewer.name, viewer.role)
        media = "video/mp4" if found.kind == "mp4" else "application/json"
        name = f"{found.export_id}.{found.kind}"
        headers = {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'}
        return FileResponse(found.path, media_type=media, headers=headers)


def _may_play(viewer: Viewer) -> None:
    if not may_play_back(viewer.role):
        raise HTTPException(403, "recordings are for staff")
