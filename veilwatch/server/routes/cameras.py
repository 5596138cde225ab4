"""Cameras: the list, live streams and snapshots, turn-taking, and steering.

A stream checks the session on every frame, so a revoked session or a changed role stops it at
once; joining and leaving a stream is what makes someone a watcher of that camera.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from veilwatch.access import may_take_over
from veilwatch.errors import PTZError
from veilwatch.live.control import ControlState
from veilwatch.live.onvif_ptz import HeadStep, OnvifPTZ
from veilwatch.live.ptz import PTZView
from veilwatch.room.actions import ActionRecorder
from veilwatch.room.cameras import CameraRoom
from veilwatch.server.auth import Viewer
from veilwatch.server.context import RequestBody
from veilwatch.server.deps import CamerasDep, CurrentViewer, RecorderDep, SessionsDep, ViewedCamera
from veilwatch.storage.actions import ActionKind

STREAM_BOUNDARY = "veilwatchframe"
A_VISITOR = "a visitor"


class PTZCommand(RequestBody):
    """A steering step: pan/tilt by a share of the view (-1..1), zoom by a factor step; or reset."""

    pan: float = Field(0.0, ge=-1, le=1)
    tilt: float = Field(0.0, ge=-1, le=1)
    zoom: float = Field(0.0, ge=-8, le=8)
    reset: bool = False


class ControlOut(BaseModel):
    """Who steers, for how long still, and who waits (visitors see other visitors only as "a visitor")."""

    holder: str | None
    remaining_s: float
    queue: list[str]


class ViewOut(BaseModel):
    """The digital pan/tilt/zoom of a view."""

    pan: float
    tilt: float
    zoom: float


class WatchersOut(BaseModel):
    """Who watches: staff by name, visitors by count."""

    staff: list[str]
    visitors: int


class CameraStateOut(BaseModel):
    """A camera's live state: source state, watchers, control lease, what steering moves, and the view."""

    state: str
    watchers: WatchersOut
    control: ControlOut
    ptz: Literal["onvif", "digital"]
    view: ViewOut


class CameraOut(CameraStateOut):
    """What the room shows about a camera."""

    name: str
    location: str
    purpose: str
    steerable: bool
    retention_days: float


class HeadMoveOut(BaseModel):
    """What was sent to a real (ONVIF) head."""

    operation: str
    pan: float
    tilt: float
    zoom: float


class SteerOut(BaseModel):
    """The result of a steering step: the digital view, or the head's move and the view."""

    ptz: Literal["onvif", "digital"]
    pan: float | None = None
    tilt: float | None = None
    zoom: float | None = None
    sent: HeadMoveOut | None = None
    view: ViewOut | None = None


def cameras() -> APIRouter:
    """Routes of the live cameras."""
    router = APIRouter(prefix="/api/cameras")

    @router.get("")
    def list_cameras(viewer: CurrentViewer, cameras: CamerasDep) -> list[CameraOut]:
        return [camera_summary(camera, viewer) for camera in cameras.visible_to(viewer.role)]

    @router.get("/{name}/stream.mjpg")
    async def stream(
        camera: ViewedCamera, request: Request, viewer: CurrentViewer, recorder: RecorderDep, sessions: SessionsDep
    ) -> StreamingResponse:
        recorder.record(ActionKind.VIEW_START, viewer.name, viewer.role, camera.name)  # logged first, or not served
        watcher = camera.presence.join(camera.name, viewer.name, viewer.role)

        async def frames() -> AsyncIterator[bytes]:
            seq = -1
            try:
                while not await request.is_disconnected():
                    published = await asyncio.to_thread(camera.pipeline.wait_next, seq, 1.0)
                    if sessions.lookup(viewer.session_token) is None:
                        return  # session revoked or role changed: stop at once
                    if published is not None:
                        seq = published.seq
                        yield multipart_part(published.jpeg)
            finally:
                camera.presence.leave(watcher)
                recorder.record(ActionKind.VIEW_STOP, viewer.name, viewer.role, camera.name)

        media = f"multipart/x-mixed-replace; boundary={STREAM_BOUNDARY}"
        return StreamingResponse(frames(), media_type=media, headers={"Cache-Control": "no-store"})

    @router.get("/{name}/snapshot.jpg")
    def snapshot(camera: ViewedCamera, viewer: CurrentViewer, recorder: RecorderDep) -> Response:
        published = camera.pipeline.latest()
        if published is None:
            raise HTTPException(503, "no veiled frame yet")
        recorder.record(ActionKind.VIEW_SNAPSHOT, viewer.name, viewer.role, camera.name)
        return Response(published.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    _steering(router)
    return router


def _steering(router: APIRouter) -> None:
    """Routes of turn-taking and steering."""

    @router.post("/{name}/control/request")
    def request_control(camera: ViewedCamera, viewer: CurrentViewer) -> ControlOut:
        return control_out(steerable(camera).seat.request(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/control/release")
    def release_control(camera: ViewedCamera, viewer: CurrentViewer) -> ControlOut:
        return control_out(camera.seat.release(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/control/takeover")
    def takeover(camera: ViewedCamera, viewer: CurrentViewer) -> ControlOut:
        steerable(camera)
        if not may_take_over(viewer.role):
            raise HTTPException(403, "only operators and admins take over")
        return control_out(camera.seat.takeover(camera.name, viewer.name, viewer.role), viewer)

    @router.post("/{name}/ptz", response_model_exclude_none=True)
    def ptz(camera: ViewedCamera, command: PTZCommand, viewer: CurrentViewer, recorder: RecorderDep) -> SteerOut:
        steerable(camera)
        if not camera.seat.may_steer(camera.name, viewer.name):
            raise HTTPException(409, "take a turn first: someone else is steering, or nobody gave you control")
        if camera.head is not None:
            return steer_head(recorder, camera, camera.head, command, viewer)
        pipeline = camera.pipeline
        view = PTZView() if command.reset else pipeline.view.moved(command.pan, command.tilt, command.zoom)
        steps = {"pan": f"{view.pan:.3f}", "tilt": f"{view.tilt:.3f}", "zoom": f"{view.zoom:.3f}"}
        recorder.record(ActionKind.PTZ_MOVE, viewer.name, viewer.role, camera.name, **steps)  # logged, then done
        pipeline.set_view(view)
        return SteerOut(ptz="digital", pan=view.pan, tilt=view.tilt, zoom=view.zoom)


def steer_head(
    recorder: ActionRecorder, camera: CameraRoom, head: OnvifPTZ, command: PTZCommand, viewer: Viewer
) -> SteerOut:
    """Move the real head (ONVIF); a zoom the head has not, and a reset, also apply to the digital view."""
    steps = {"pan": f"{command.pan:.3f}", "tilt": f"{command.tilt:.3f}", "zoom": f"{command.zoom:.3f}"}
    reset = "true" if command.reset else "false"
    recorder.record(ActionKind.PTZ_MOVE, viewer.name, viewer.role, camera.name, head="onvif", reset=reset, **steps)
    try:  # logged, then moved (the head's driver holds the live view back while the picture shifts)
        moved = head.move(HeadStep(command.pan, command.tilt, command.zoom, home=command.reset))
    except PTZError as exc:
        raise HTTPException(502, exc.one_line()) from None
    pipeline = camera.pipeline
    if command.reset:
        pipeline.set_view(PTZView())
    elif command.zoom and not moved.zoom_on_head:
        pipeline.set_view(pipeline.view.moved(dzoom=command.zoom))
    sent = HeadMoveOut(operation=moved.operation, pan=moved.pan, tilt=moved.tilt, zoom=moved.zoom)
    return SteerOut(ptz="onvif", sent=sent, view=view_out(pipeline.view))


def multipart_part(jpeg: bytes) -> bytes:
    """One JPEG as a part of a multipart/x-mixed-replace (MJPEG) stream."""
    head = f"--{STREAM_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def steerable(camera: CameraRoom) -> CameraRoom:
    """The camera, if visitors may steer it."""
    if not camera.config.steerable:
        raise HTTPException(403, "this camera cannot be steered")
    return camera


def control_out(state: ControlState, viewer: Viewer) -> ControlOut:
    """Who steers, for how long still, and who waits: visitors see other visitors only as "a visitor"."""

    def shown(name: str) -> str:
        return name if viewer.staff or name in state.staff or name == viewer.name else A_VISITOR

    holder = shown(state.holder) if state.holder is not None else None
    return ControlOut(holder=holder, remaining_s=round(state.remaining_s, 1), queue=[shown(n) for n in state.queue])


def view_out(view: PTZView) -> ViewOut:
    """The digital pan/tilt/zoom of a view."""
    return ViewOut(pan=view.pan, tilt=view.tilt, zoom=view.zoom)


def camera_state(camera: CameraRoom, viewer: Viewer) -> CameraStateOut:
    """A camera's live state: source state, watchers, control lease and view."""
    watchers = camera.presence.watchers(camera.name)
    return CameraStateOut(
        state=camera.pipeline.stats().state.value,
        watchers=WatchersOut(staff=list(watchers.staff), visitors=watchers.visitors),
        control=control_out(camera.seat.state(camera.name), viewer),
        ptz="onvif" if camera.head is not None else "digital",  # what steering moves: the real head or the crop
        view=view_out(camera.pipeline.view),
    )


def camera_summary(camera: CameraRoom, viewer: Viewer) -> CameraOut:
    """What the room shows about a camera."""
    config = camera.config
    return CameraOut(
        name=config.name, location=config.location, purpose=config.purpose, steerable=config.steerable,
        retention_days=config.retention_days, **camera_state(camera, viewer).model_dump(),
    )  # fmt: skip
