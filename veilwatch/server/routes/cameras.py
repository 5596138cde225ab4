"""Cameras: the list, live streams and snapshots, turn-taking, and steering.

A stream checks the session on every frame, so a revoked session or a changed role stops it at
once; joining and leaving a stream is what makes someone a watcher of that camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from veilwatch.config import CameraConfig
from veilwatch.errors import PTZError
from veilwatch.live.control import ControlState
from veilwatch.live.onvif_ptz import HeadStep, OnvifPTZ
from veilwatch.live.ptz import PTZView
from veilwatch.server.auth import Viewer
from veilwatch.server.context import CurrentViewer, RequestBody, camera_for, may_view
from veilwatch.server.services import Services

STREAM_BOUNDARY = "veilwatchframe"
TAKEOVER_ROLES = frozenset({"operator", "admin"})


class PTZCommand(RequestBody):
    """A steering step: pan/tilt by a share of the view (-1..1), zoom by a factor step; or reset."""

    pan: float = Field(0.0, ge=-1, le=1)
    tilt: float = Field(0.0, ge=-1, le=1)
    zoom: float = Field(0.0, ge=-8, le=8)
    reset: bool = False


def cameras(services: Services, lookup: Callable[[str], Viewer | None]) -> APIRouter:
    """Routes of the live cameras."""
    router = APIRouter(prefix="/api/cameras")

    @router.get("")
    def list_cameras(viewer: CurrentViewer) -> list[dict[str, Any]]:
        return [camera_summary(services, c, viewer) for c in services.config.cameras if may_view(c, viewer)]

    @router.get("/{name}/stream.mjpg")
    async def stream(name: str, request: Request, viewer: CurrentViewer) -> StreamingResponse:
        camera = camera_for(services, name, viewer)
        pipeline = services.cameras[camera.name]
        services.record("view.start", viewer.name, viewer.role, camera.name)  # logged first, or not served
        watcher = services.presence.join(camera.name, viewer.name, viewer.role)

        async def frames() -> AsyncIterator[bytes]:
            seq = -1
            try:
                while not await request.is_disconnected():
                    published = await asyncio.to_thread(pipeline.wait_next, seq, 1.0)
                    if lookup(viewer.session_token) is None:
                        return  # session revoked or role changed: stop at once
                    if published is not None:
                        seq = published.seq
                        yield multipart_part(published.jpeg)
            finally:
                services.presence.leave(watcher)
                services.record("view.stop", viewer.name, viewer.role, camera.name)

        media = f"multipart/x-mixed-replace; boundary={STREAM_BOUNDARY}"
        return StreamingResponse(frames(), media_type=media, headers={"Cache-Control": "no-store"})

    @router.get("/{name}/snapshot.jpg")
    def snapshot(name: str, viewer: CurrentViewer) -> Response:
        camera = camera_for(services, name, viewer)
        published = services.cameras[camera.name].latest()
        if published is None:
            raise HTTPException(503, "no veiled frame yet")
        services.record("view.snapshot", viewer.name, viewer.role, camera.name)
        return Response(published.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @router.post("/{name}/control/request")
    def request_control(name: str, viewer: CurrentViewer) -> dict[str, Any]:
        camera = steerable(camera_for(services, name, viewer))
        return control_json(services.desk.request(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/control/release")
    def release_control(name: str, viewer: CurrentViewer) -> dict[str, Any]:
        camera = camera_for(services, name, viewer)
        return control_json(services.desk.release(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/control/takeover")
    def takeover(name: str, viewer: CurrentViewer) -> dict[str, Any]:
        camera = steerable(camera_for(services, name, viewer))
        if viewer.role not in TAKEOVER_ROLES:
            raise HTTPException(403, "only operators and admins take over")
        return control_json(services.desk.takeover(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/ptz")
    def ptz(name: str, command: PTZCommand, viewer: CurrentViewer) -> dict[str, Any]:
        camera = steerable(camera_for(services, name, viewer))
        if not services.desk.may_steer(camera.name, viewer.name):
            raise HTTPException(409, "take a turn first: someone else is steering, or nobody gave you control")
        head = services.heads.get(camera.name)
        if head is not None:
            return steer_head(services, head, command, viewer)
        pipeline = services.cameras[camera.name]
        view = PTZView() if command.reset else pipeline.view.moved(command.pan, command.tilt, command.zoom)
        steps = {"pan": f"{view.pan:.3f}", "tilt": f"{view.tilt:.3f}", "zoom": f"{view.zoom:.3f}"}
        services.record("ptz.move", viewer.name, viewer.role, camera.name, **steps)  # logged, then done
        pipeline.set_view(view)
        return {"ptz": "digital", **view_json(view)}

    return router


def steer_head(services: Services, head: OnvifPTZ, command: PTZCommand, viewer: Viewer) -> dict[str, Any]:
    """Move the real head (ONVIF); a zoom the head has not, and a reset, also apply to the digital view."""
    steps = {"pan": f"{command.pan:.3f}", "tilt": f"{command.tilt:.3f}", "zoom": f"{command.zoom:.3f}"}
    reset = "true" if command.reset else "false"
    services.record("ptz.move", viewer.name, viewer.role, head.camera, head="onvif", reset=reset, **steps)
    try:  # logged, then moved (the head's driver holds the live view back while the picture shifts)
        moved = head.move(HeadStep(command.pan, command.tilt, command.zoom, home=command.reset))
    except PTZError as exc:
        raise HTTPException(502, exc.one_line()) from None
    pipeline = services.cameras[head.camera]
    if command.reset:
        pipeline.set_view(PTZView())
    elif command.zoom and not moved.zoom_on_head:
        pipeline.set_view(pipeline.view.moved(dzoom=command.zoom))
    sent = {"operation": moved.operation, "pan": moved.pan, "tilt": moved.tilt, "zoom": moved.zoom}
    return {"ptz": "onvif", "sent": sent, "view": view_json(pipeline.view)}


def multipart_part(jpeg: bytes) -> bytes:
    """One JPEG as a part of a multipart/x-mixed-replace (MJPEG) stream."""
    head = f"--{STREAM_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def steerable(camera: CameraConfig) -> CameraConfig:
    """The camera, if visitors may steer it."""
    if not camera.steerable:
        raise HTTPException(403, "this camera cannot be steered")
    return camera


A_VISITOR = "a visitor"


def control_json(state: ControlState, viewer: Viewer) -> dict[str, Any]:
    """Who steers, for how long still, and who waits: visitors see other visitors only as "a visitor"."""

    def shown(name: str) -> str:
        return name if viewer.staff or name in state.staff or name == viewer.name else A_VISITOR

    holder = shown(state.holder) if state.holder is not None else None
    return {"holder": holder, "remaining_s": round(state.remaining_s, 1), "queue": [shown(n) for n in state.queue]}


def view_json(view: PTZView) -> dict[str, float]:
    """The digital pan/tilt/zoom of a view."""
    return {"pan": view.pan, "tilt": view.tilt, "zoom": view.zoom}


def camera_state(services: Services, name: str, viewer: Viewer) -> dict[str, Any]:
    """A camera's live state: source state, watchers, control lease and view."""
    pipeline = services.cameras[name]
    watchers = services.presence.watchers(name)
    return {
        "state": pipeline.stats().state.value,
        "watchers": {"staff": list(watchers.staff), "visitors": watchers.visitors},
        "control": control_json(services.desk.state(name), viewer),
        "ptz": "onvif" if name in services.heads else "digital",  # what steering moves: the real head or the crop
        "view": view_json(pipeline.view),
    }


def camera_summary(services: Services, camera: CameraConfig, viewer: Viewer) -> dict[str, Any]:
    """What the room shows about a camera."""
    return {
        "name": camera.name,
        "location": camera.location,
        "purpose": camera.purpose,
        "steerable": camera.steerable,
        "retention_days": camera.retention_days,
        **camera_state(services, camera.name, viewer),
    }
