"""The monitoring room web app: `create_app(services)` builds it; nothing is global.

Every route needs a session unless it is declared `@public` (see `auth.py`); every media route
checks the camera permission when it serves. The routes live in `routes/`, one module each.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from veilwatch import __version__
from veilwatch.errors import AuditError
from veilwatch.server.auth import AuthMiddleware, LoginThrottle, Viewer, public
from veilwatch.server.context import STATIC, viewer_lookup
from veilwatch.server.guards import BodyLimit, HostCheck
from veilwatch.server.routes.cameras import cameras
from veilwatch.server.routes.docs import docs
from veilwatch.server.routes.log import log
from veilwatch.server.routes.ops import ops
from veilwatch.server.routes.pages import pages
from veilwatch.server.routes.recordings import recordings
from veilwatch.server.routes.room import room
from veilwatch.server.routes.sessions import sessions
from veilwatch.server.routes.tiles import tiles
from veilwatch.server.routes.transparency import transparency
from veilwatch.server.routes.unmask import unmask
from veilwatch.server.services import Services


def create_app(services: Services, *, throttle: LoginThrottle | None = None) -> FastAPI:
    """The ASGI app of the monitoring room over running services."""
    # No FastAPI /docs or /redoc: they load Swagger UI and ReDoc from a CDN (routes/docs.py serves our own).
    app = FastAPI(title="veilwatch monitoring room", version=__version__, docs_url=None, redoc_url=None)
    lookup = viewer_lookup(services)
    routers = (
        pages(services),
        sessions(services, throttle or LoginThrottle()),
        cameras(services, lookup),
        recordings(services),
        room(services, lookup),
        ops(services),
        log(services),
        tiles(services),
        transparency(services),
        unmask(services),
        docs(),
    )
    for router in routers:
        # The routers' own route objects (their paths carry the prefixes), so that the app's
        # route table is flat: the auth middleware and the route-walking test read it directly.
        app.router.routes.extend(router.routes)
    static = StaticFiles(directory=str(STATIC))
    public(static)  # stylesheets and scripts only: no data, no media
    app.mount("/static", static, name="static")
    tokens = {"metrics": services.config.server.metrics_token or ""}

    def denied(method: str, path: str, status: int, why: str, client: str) -> None:
        details = {"method": method, "path": path[:200], "status": status, "why": why}
        _record_anonymous_refusal(services, client, details)

    app.add_middleware(AuthMiddleware, routes=app.router.routes, lookup=lookup, tokens=tokens, on_denied=denied)
    # Added last, run first: an unknown Host or an oversized body is refused before anything else reads it.
    app.add_middleware(BodyLimit, max_bytes=services.config.server.max_body_bytes)
    app.add_middleware(HostCheck, allowed=services.config.server.host_names())
    _log_refusals(app, services)
    _plain_validation_errors(app)
    return app


def _record_anonymous_refusal(services: Services, client: str, details: dict[str, object]) -> None:
    """Log a refusal of a request nobody is known to have sent: at most one leaf per client and period."""
    unlogged = services.refusals.admit(client)
    if unlogged is None:
        return  # counted (metrics: veilwatch_refusals_unlogged_total), not a leaf
    if unlogged:
        details = {**details, "unlogged_before": unlogged}
    services.record("auth.denied", "system", "system", None, **details)


def _log_refusals(app: FastAPI, services: Services) -> None:
    """Refused requests (401, 403) go into the log; so does a log that cannot take an action (503, refused)."""

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (401, 403):
            viewer = request.scope.get("state", {}).get("viewer")
            actor, role = (viewer.name, viewer.role) if isinstance(viewer, Viewer) else ("system", "system")
            route = request.scope.get("route")  # the template, never text of the caller's choosing
            template = str(getattr(route, "path", "?"))
            details: dict[str, object] = {"method": request.method, "path": template, "status": exc.status_code}
            with contextlib.suppress(Exception):  # the refusal stands either way
                if isinstance(viewer, Viewer):  # someone known: always a leaf of its own
                    await asyncio.to_thread(services.record, "auth.denied", actor, role, None, **details)
                else:
                    client = request.client.host if request.client else "?"
                    await asyncio.to_thread(_record_anonymous_refusal, services, client, details)
        return await http_exception_handler(request, exc)

    @app.exception_handler(AuditError)
    async def log_down(request: Request, exc: AuditError) -> Response:
        # The action was not recorded, so it did not happen: refuse it rather than serve it unlogged.
        detail = f"refused: the tamper-evident log cannot record this action ({exc.one_line()[:200]})"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


def _plain_validation_errors(app: FastAPI) -> None:
    """A refused body is answered with where and why, never with the input itself (no echo, no NaN in JSON)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(part)[:64] for part in error.get("loc", ())], "msg": str(error.get("msg", "invalid"))[:200]}
            for error in exc.errors()[:10]
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc']) or 'request'}: {first['msg']}"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
