"""Operations: a public health check, and Prometheus metrics for staff or a bearer token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel

from veilwatch import __version__
from veilwatch.server.auth import Viewer, bearer_ok, public
from veilwatch.server.deps import CamerasDep, RefusalsDep
from veilwatch.server.metrics import metrics_text


class HealthOut(BaseModel):
    """Whether the room runs, its version, and how many of its cameras are live."""

    status: str
    version: str
    cameras: int
    live: int


def ops() -> APIRouter:
    """Routes for monitoring the monitoring room."""
    router = APIRouter()

    @router.get("/health")
    @public
    def health(cameras: CamerasDep) -> HealthOut:
        states = [camera.pipeline.stats().state.value for camera in cameras]
        return HealthOut(status="ok", version=__version__, cameras=len(states), live=states.count("live"))

    @router.get("/metrics")
    @bearer_ok("metrics")
    def metrics(request: Request, cameras: CamerasDep, refusals: RefusalsDep) -> Response:
        viewer = request.scope.get("state", {}).get("viewer")
        if isinstance(viewer, Viewer) and not viewer.staff:
            raise HTTPException(403, "staff only")
        return Response(metrics_text(cameras, refusals), media_type="text/plain; version=0.0.4")

    return router
