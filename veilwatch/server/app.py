"""The monitoring room web app: `create_app(room)` builds it over a running room; nothing is global.

Every route needs a session unless it is declared `@public` (see `auth.py`); every media route
checks the camera permission when it serves. The routes live in `routes/`, one module each, and
take the services they use through the providers in `deps.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from veilwatch import __version__
from veilwatch.access import Role
from veilwatch.errors import AuditError
from veilwatch.room.actions import ActionRecorder
from veilwatch.room.refusals import RefusalTally
from veilwatch.room.room import Room
from veilwatch.server.auth import AuthMiddleware, LoginThrottle, Viewer, public
from veilwatch.server.context import STATIC
from veilwatch.server.guards import BodyLimit, HostCheck
from veilwatch.server.routes.cameras import cameras
from veilwatch.server.routes.docs import docs
from veilwatch.server.routes.log import log_routes
from veilwatch.server.routes.ops import ops
from veilwatch.server.routes.pages import pages
from veilwatch.server.routes.recordings import recordings
from veilwatch.server.routes.room import room as room_routes
from veilwatch.server.routes.sessions import sessions
from veilwatch.server.routes.tiles import tile_routes
from veilwatch.server.routes.transparency import transparency
from veilwatch.server.routes.unmask import unmask
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.sessions import SessionStore


def create_app(room: Room, *, throttle: LoginThrottle | None = None) -> FastAPI:
    """The ASGI app of the monitoring room over a running room."""
    # No FastAPI /docs or /redoc: they load Swagger UI and ReDoc from a CDN (routes/docs.py serves our own).
    app = FastAPI(title="veilwatch monitoring room", version=__version__, docs_url=None, redoc_url=None)
    app.state.room = room  # read by the providers in deps.py only
    app.state.throttle = throttle or LoginThrottle()
    server, recorder = room.config.server, room.records.recorder
    routers = (
        pages(), sessions(), cameras(), recordings(), room_routes(), ops(),
        log_routes(room.records.audit, room.config.audit.witnesses), tile_routes(room.records.audit),
        transparency(), unmask(), docs(),
    )  # fmt: skip
    for router in routers:
        # The routers' own route objects (their paths carry the prefixes), so that the app's
        # route table is flat: the auth middleware and the route-walking test read it directly.
        app.router.routes.extend(router.routes)
    static = StaticFiles(directory=str(STATIC))
    public(static)  # stylesheets and scripts only: no data, no media
    app.mount("/static", static, name="static")
    tokens = {"metrics": server.metrics_token or ""}

    def denied(method: str, path: str, status: int, why: str, client: str) -> None:
        details = {"method": method, "path": path[:200], "status": status, "why": why}
        record_anonymous_refusal(room.refusals, recorder, client, details)

    lookup = viewer_lookup(room.sessions)
    app.add_middleware(AuthMiddleware, routes=app.router.routes, lookup=lookup, tokens=tokens, on_denied=denied)
    # Added last, run first: an unknown Host or an oversized body is refused before anything else reads it.
    app.add_middleware(BodyLimit, max_bytes=server.max_body_bytes)
    app.add_middleware(HostCheck, allowed=server.host_names())
    _log_refusals(app, room.refusals, recorder)
    _plain_validation_errors(app)
    return app


def viewer_lookup(sessions: SessionStore) -> Callable[[str], Viewer | None]:
    """Session token → the viewer behind it, or None when unknown, expired or revoked."""

    def lookup(token: str) -> Viewer | None:
        active = sessions.lookup(token)
        if active is None:
            return None
        return Viewer(active.user.id, active.user.name, Role(active.user.role), active.csrf_token, token)

    return lookup


def record_anonymous_refusal(
    refusals: RefusalTally, recorder: ActionRecorder, client: str, details: dict[str, object]
) -> None:
    """Log a refusal of a request nobody is known to have sent: at most one leaf per client and period."""
    unlogged = refusals.admit(client)
    if unlogged is None:
        return  # counted (metrics: veilwatch_refusals_unlogged_total), not a leaf
    if unlogged:
        details = {**details, "unlogged_before": unlogged}
    recorder.record(ActionKind.AUTH_DENIED, "system", "system", None, **details)


def _log_refusals(app: FastAPI, refusals: RefusalTally, recorder: ActionRecorder) -> None:
    """Refused requests (401, 403) go into the log; so does a log that cannot take an action (503, refused)."""

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (401, 403):
            viewer = request.scope.get("state", {}).get("viewer")
            route = request.scope.get("route")  # the template, never text of the caller's choosing
            template = str(getattr(route, "path", "?"))
            details: dict[str, object] = {"method": request.method, "path": template, "status": exc.status_code}
            with contextlib.suppress(Exception):  # the refusal stands either way
                if isinstance(viewer, Viewer):  # someone known: always a leaf of its own
                    kind = ActionKind.AUTH_DENIED
                    await asyncio.to_thread(recorder.record, kind, viewer.name, viewer.role, None, **details)
                else:
                    client = request.client.host if request.client else "?"
                    await asyncio.to_thread(record_anonymous_refusal, refusals, recorder, client, details)
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
