"""The narrow `Depends` providers routes take: each route names the one or two services it uses.

`create_app` puts the room on `app.state`; only the providers here read it, so no route sees the
whole room. Who is asking (`CurrentViewer`) and which camera they may see (`ViewedCamera`) are
providers too: a route that names them cannot forget the check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException
from fastapi.requests import HTTPConnection

from veilwatch.access import may_unmask
from veilwatch.audit.log import AuditLog
from veilwatch.clips.exporting import ExportService
from veilwatch.config import ServerConfig
from veilwatch.room.actions import ActionRecorder
from veilwatch.room.cameras import CameraRoom, Cameras
from veilwatch.room.refusals import RefusalTally
from veilwatch.room.room import Room
from veilwatch.room.setup import SetupToken
from veilwatch.server.auth import LoginThrottle, Viewer
from veilwatch.storage.actions import ActionKind, ActionLog
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sessions import SessionStore
from veilwatch.storage.unmask_requests import UnmaskStore
from veilwatch.storage.users import UserStore
from veilwatch.vault.desk import UnmaskDesk
from veilwatch.vault.public import VaultPublic

T = TypeVar("T")


def room_of(connection: HTTPConnection) -> Room:
    """The room this app serves (set once by `create_app`)."""
    room = connection.app.state.room
    if not isinstance(room, Room):  # create_app always sets it; this keeps the type honest
        raise TypeError("the app serves no room")
    return room


def _throttle(connection: HTTPConnection) -> LoginThrottle:
    throttle = connection.app.state.throttle
    if not isinstance(throttle, LoginThrottle):
        raise TypeError("the app has no login throttle")
    return throttle


def _viewer(connection: HTTPConnection) -> Viewer:
    viewer = connection.scope.get("state", {}).get("viewer")
    if not isinstance(viewer, Viewer):  # the auth middleware sets it on every non-public route
        raise HTTPException(401, "log in first")
    return viewer


CurrentViewer = Annotated[Viewer, Depends(_viewer)]


def _provider(pick: Callable[[Room], T]) -> Callable[[HTTPConnection], T]:
    def provide(connection: HTTPConnection) -> T:
        return pick(room_of(connection))

    return provide


CamerasDep = Annotated[Cameras, Depends(_provider(lambda room: room.cameras))]
RecorderDep = Annotated[ActionRecorder, Depends(_provider(lambda room: room.records.recorder))]
UsersDep = Annotated[UserStore, Depends(_provider(lambda room: room.records.users))]
ActionsDep = Annotated[ActionLog, Depends(_provider(lambda room: room.records.actions))]
AuditDep = Annotated[AuditLog, Depends(_provider(lambda room: room.records.audit))]
SessionsDep = Annotated[SessionStore, Depends(_provider(lambda room: room.sessions))]
SetupDep = Annotated[SetupToken, Depends(_provider(lambda room: room.setup))]
SegmentsDep = Annotated[SegmentIndex, Depends(_provider(lambda room: room.segments))]
ExportsDep = Annotated[ExportService, Depends(_provider(lambda room: room.exports))]
UnmasksDep = Annotated[UnmaskStore, Depends(_provider(lambda room: room.unmasks))]
VaultDep = Annotated[VaultPublic | None, Depends(_provider(lambda room: room.vault))]
RefusalsDep = Annotated[RefusalTally, Depends(_provider(lambda room: room.refusals))]
ServerDep = Annotated[ServerConfig, Depends(_provider(lambda room: room.config.server))]
ThrottleDep = Annotated[LoginThrottle, Depends(_throttle)]


def see_camera(cameras: Cameras, recorder: ActionRecorder, name: str, viewer: Viewer) -> CameraRoom:
    """The camera, if it exists and this viewer may see it; else 404 (no probing which exist)."""
    camera = cameras.get(name)
    if camera is None or not camera.may_view(viewer.role):
        # A refused camera is logged like any refusal, yet answered like a missing one (no probing).
        asked = name if camera is not None else None  # an unknown name is not written into the public log
        recorder.record(ActionKind.AUTH_DENIED, viewer.name, viewer.role, None, camera_asked=asked, status=404)
        raise HTTPException(404, "no such camera")
    return camera


def _viewed_camera(name: str, viewer: CurrentViewer, cameras: CamerasDep, recorder: RecorderDep) -> CameraRoom:
    return see_camera(cameras, recorder, name, viewer)


ViewedCamera = Annotated[CameraRoom, Depends(_viewed_camera)]


def _unmask_desk(viewer: CurrentViewer, connection: HTTPConnection) -> UnmaskDesk:
    if not may_unmask(viewer.role):
        raise HTTPException(403, "unmasking is for staff")
    desk = room_of(connection).unmask
    if desk is None:
        raise HTTPException(409, "no key vault is configured: raw faces are not kept, nothing can be unmasked")
    return desk


UnmaskDeskDep = Annotated[UnmaskDesk, Depends(_unmask_desk)]

__all__ = [
    "ActionsDep",
    "AuditDep",
    "CamerasDep",
    "CurrentViewer",
    "ExportsDep",
    "RecorderDep",
    "RefusalsDep",
    "SegmentsDep",
    "ServerDep",
    "SessionsDep",
    "SetupDep",
    "ThrottleDep",
    "UnmaskDeskDep",
    "UnmasksDep",
    "UsersDep",
    "VaultDep",
    "ViewedCamera",
    "room_of",
    "see_camera",
]
