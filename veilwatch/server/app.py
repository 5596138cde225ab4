"""The monitoring room web app: `create_app(services)` builds it; nothing is global.

Every route needs a session unless it is declared `@public` (see `auth.py`); every media route
checks the camera permission when it serves. The routes live in `routes/`, one module each.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from veilwatch import __version__
from veilwatch.server.auth import AuthMiddleware, LoginThrottle, public
from veilwatch.server.context import STATIC, viewer_lookup
from veilwatch.server.routes.cameras import cameras
from veilwatch.server.routes.ops import ops
from veilwatch.server.routes.pages import pages
from veilwatch.server.routes.recordings import recordings
from veilwatch.server.routes.room import room
from veilwatch.server.routes.sessions import sessions
from veilwatch.server.services import Services


def create_app(services: Services, *, throttle: LoginThrottle | None = None) -> FastAPI:
    """The ASGI app of the monitoring room over running services."""
    app = FastAPI(title="veilwatch monitoring room", version=__version__)
    lookup = viewer_lookup(services)
    routers = (
        pages(services),
        sessions(services, throttle or LoginThrottle()),
        cameras(services, lookup),
        recordings(services),
        room(services, lookup),
        ops(services),
    )
    for router in routers:
        # The routers' own route objects (their paths carry the prefixes), so that the app's
        # route table is flat: the auth middleware and the route-walking test read it directly.
        app.router.routes.extend(router.routes)
    static = StaticFiles(directory=str(STATIC))
    public(static)  # stylesheets and scripts only: no data, no media
    app.mount("/static", static, name="static")
    tokens = {"metrics": services.config.server.metrics_token or ""}
    app.add_middleware(AuthMiddleware, routes=app.router.routes, lookup=lookup, tokens=tokens)
    return app
