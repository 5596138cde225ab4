"""Playback and export of veiled recordings, by camera and time; staff only, every use recorded.

An export is a veiled clip cut from the recordings (re-encoded, no tags) and a manifest that ties
its SHA-256 to the export's entry in the tamper-evident log, with an inclusion proof and a signed
checkpoint: `veilwatch audit verify-export CLIP MANIFEST --key VKEY` checks it offline.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse

from veilwatch.audit.note import Checkpoint, Note
from veilwatch.clips.export import build_manifest
from veilwatch.clips.recorded import encode_mp4, recorded_frames
from veilwatch.errors import StorageError
from veilwatch.media.atomic import atomic_output
from veilwatch.server.auth import Viewer
from veilwatch.server.context import STAFF_ROLES, CurrentViewer, RequestBody, camera_for, may_view
from veilwatch.server.services import Services

MAX_EXPORT_S = 3600.0
# SQLite integers are 64-bit: a larger id must be refused as a bad request, not overflow in the query.
SegmentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ExportBody(RequestBody):
    """A time range of one camera's recordings to export (UTC seconds)."""

    start: float
    end: float


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
    def segment_file(segment_id: SegmentId, viewer: CurrentViewer) -> FileResponse:
        segment = services.segments.get(segment_id)
        camera = services.config.camera(segment.camera) if segment else None
        if segment is None or camera is None or not may_view(camera, viewer) or segment.status != "complete":
            raise HTTPException(404, "no such recording")
        _may_play(viewer)
        services.record("playback", viewer.name, viewer.role, camera.name, segment=segment_id)
        path = _inside(services.config.server.data_dir, services.segments.absolute(segment.path))
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    @router.post("/cameras/{name}/exports")
    def export(name: str, body: ExportBody, viewer: CurrentViewer) -> dict[str, Any]:
        camera = camera_for(services, name, viewer)
        _may_play(viewer)
        end = min(body.end, time.time())  # nothing is recorded in the future
        if not 0 < end - body.start <= MAX_EXPORT_S:
            raise HTTPException(400, f"an export covers more than nothing and at most {MAX_EXPORT_S / 60:.0f} minutes")
        try:
            clip, frames = encode_mp4(recorded_frames(services.segments, camera.name, body.start, end), camera.fps)
        except StorageError as exc:
            raise HTTPException(404, exc.one_line()) from exc
        export_id = secrets.token_hex(8)
        start_us, end_us = round(body.start * 1e6), round(end * 1e6)
        digest = hashlib.sha256(clip).hexdigest()
        # Logged before it exists for anyone: the manifest proves this very entry.
        index = services.record(
            "export", viewer.name, viewer.role, camera.name,
            export=export_id, sha256=digest, bytes=len(clip), frames=frames, start_us=start_us, end_us=end_us,
        )  # fmt: skip
        note = services.audit.checkpoint(force=True)
        size = Checkpoint.parse(Note.parse(note).text).size
        manifest = build_manifest(
            f"{camera.name}-{export_id}.mp4", clip, camera.name, start_us, end_us, index,
            services.audit.entries(index, index + 1)[0], size, services.audit.inclusion(index, size), note,
        )  # fmt: skip
        folder = _exports(services)
        for path, data in ((folder / f"{export_id}.mp4", clip), (folder / f"{export_id}.manifest.json", manifest)):
            with atomic_output(path, overwrite=False) as tmp:
                tmp.write_bytes(data)
        return {
            "id": export_id,
            "sha256": digest,
            "frames": frames,
            "clip_url": f"/api/exports/{export_id}.mp4",
            "manifest_url": f"/api/exports/{export_id}.manifest.json",
            "log_index": index,
        }

    @router.get("/exports/{file_name}")
    def export_file(file_name: str, viewer: CurrentViewer) -> FileResponse:
        _may_play(viewer)
        match = re.fullmatch(r"([0-9a-f]{16})\.(mp4|manifest\.json)", file_name)
        if match is None:
            raise HTTPException(404, "no such export")
        export_id, kind = match.groups()
        path = _inside(services.config.server.data_dir, _exports(services) / f"{export_id}.{kind}")
        if not path.is_file():
            raise HTTPException(404, "no such export")
        # Export ids are in the public log: the camera's viewers decide, as for its recordings.
        camera = camera_for(services, _export_camera(services, export_id), viewer)
        services.record("export.fetch", viewer.name, viewer.role, camera.name, export=export_id, file=kind)
        media = "video/mp4" if kind == "mp4" else "application/json"
        headers = {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{export_id}.{kind}"'}
        return FileResponse(path, media_type=media, headers=headers)

    return router


def _exports(services: Services) -> FilePath:
    folder = services.config.server.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _export_camera(services: Services, export_id: str) -> str:
    """The camera an export was cut from, as its manifest (written by this server) names it."""
    try:
        camera = json.loads((_exports(services) / f"{export_id}.manifest.json").read_bytes())["camera"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HTTPException(404, "no such export") from exc
    if not isinstance(camera, str):
        raise HTTPException(404, "no such export")
    return camera


def _may_play(viewer: Viewer) -> None:
    if viewer.role not in STAFF_ROLES:
        raise HTTPException(403, "recordings are for staff")


def _inside(root: FilePath, path: FilePath) -> FilePath:
    """The path, if it lies inside root once links are resolved (nothing outside the data folder)."""
    resolved, base = path.resolve(), root.resolve()
    if base not in resolved.parents:
        raise HTTPException(404, "no such recording")
    return resolved
