"""The room's live state over a websocket: per camera, its state, watchers and control lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from veilwatch.server.auth import Viewer
from veilwatch.server.context import may_view
from veilwatch.server.routes.cameras import camera_state
from veilwatch.server.services import Services

PUSH_INTERVAL_S = 0.5


def room(services: Services, lookup: Callable[[str], Viewer | None]) -> APIRouter:
    """The room websocket (its session is checked by the auth middleware, then on every push)."""
    router = APIRouter()

    @router.websocket("/ws/room")
    async def room_state(socket: WebSocket) -> None:
        viewer = socket.scope.get("state", {}).get("viewer")
        if not isinstance(viewer, Viewer):
            await socket.close(4401)
            return
        await socket.accept()
        try:
            while lookup(viewer.session_token) is not None:
                cameras = {
                    c.name: camera_state(services, c.name, viewer)
                    for c in services.config.cameras
                    if may_view(c, viewer)
                }
                await socket.send_json({"at": time.time(), "you": viewer.name, "cameras": cameras})
                await asyncio.sleep(PUSH_INTERVAL_S)
            await socket.close(4401)
        except WebSocketDisconnect:
            return

    return router
