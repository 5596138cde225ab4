"""Operations: a public health check, and Prometheus metrics for staff or a bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from veilwatch import __version__
from veilwatch.server.auth import Viewer, bearer_ok, public
from veilwatch.server.metrics import metrics_text
from veilwatch.server.services import Services


def ops(services: Services) -> APIRouter:
    """Routes for monitoring the monitoring room."""
    router = APIRouter()

    @router.get("/health")
    @public
    def health() -> dict[str, Any]:
        states = [p.stats().state.value for p in services.cameras.values()]
        return {"status": "ok", "version": __version__, "cameras": len(states), "live": states.count("live")}

    @router.get("/metrics")
    @bearer_ok("metrics")
    def metrics(request: Request) -> Response:
        viewer = request.scope.get("state", {}).get("viewer")
        if isinstance(viewer, Viewer) and not viewer.staff:
            raise HTTPException(403, "staff only")
        return Response(metrics_text(services), media_type="text/plain; version=0.0.4")

    return router
