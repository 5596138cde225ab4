"""The room's live state over a websocket: per camera, its state, watchers and control lease."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from veilwatch.server.auth import Viewer
from veilwatch.server.deps import CamerasDep, SessionsDep
from veilwatch.server.routes.cameras import camera_state

PUSH_INTERVAL_S = 0.5


def room() -> APIRouter:
    """The room websocket (its session is checked by the auth middleware, then on every push)."""
    router = APIRouter()

    @router.websocket("/ws/room")
    async def room_state(socket: WebSocket, cameras: CamerasDep, sessions: SessionsDep) -> None:
        viewer = socket.scope.get("state", {}).get("viewer")
        if not isinstance(viewer, Viewer):
            await socket.close(4401)
            return
        await socket.accept()
        try:
            while sessions.lookup(viewer.session_token) is not None:
                states = {c.name: camera_state(c, viewer).model_dump() for c in cameras.visible_to(viewer.role)}
                await socket.send_json({"at": time.time(), "you": viewer.name, "cameras": states})
                await asyncio.sleep(PUSH_INTERVAL_S)
            await socket.close(4401)
        except WebSocketDisconnect:
            return

    return router
