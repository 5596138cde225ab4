"""Log-in, log-out, first-run set-up and "who am I" — the only routes that create sessions."""

from __future__ import annotations

import hmac
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from veilwatch.errors import UserError
from veilwatch.server.auth import SESSION_COOKIE, LoginThrottle, public
from veilwatch.server.context import CurrentViewer, RequestBody
from veilwatch.server.services import Services
from veilwatch.storage.users import Role, User, check_name, check_password


class Credentials(RequestBody):
    """A login attempt."""

    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class SetupRequest(Credentials):
    """The first administrator, created with the one-time set-up token."""

    token: str = Field(max_length=128)


def sessions(services: Services, throttle: LoginThrottle) -> APIRouter:
    """Routes that open and close sessions."""
    router = APIRouter(prefix="/api")
    setup_lock = threading.Lock()  # one first administrator, even if two set-ups race

    @router.post("/login")
    @public
    def login(credentials: Credentials, request: Request) -> JSONResponse:
        pair, address = _throttle_keys(request, credentials.name)
        wait, stamp = throttle.attempt(pair, address)
        if wait > 0:
            headers = {"Retry-After": str(int(wait) + 1)}
            return JSONResponse({"detail": "too many failed logins; wait and try again"}, 429, headers)
        # Unknown names cost the same hash as known ones (see UserStore.verify): no telling which exist.
        user = services.users.verify(credentials.name, credentials.password)
        if user is None:
            # The log is public: the name typed (a visitor's, a staff member's, or a password pasted
            # into the name field) appears as an `attempt-` pseudonym of its own domain, whoever it
            # names, and the client's address not at all.
            services.record("login.failed", "system", "system", attempt=credentials.name[:64])
            raise HTTPException(401, "wrong name or password")
        throttle.succeeded(pair, address, stamp=stamp)
        services.record("login", user.name, str(user.role))
        return _session_response(services, user, request)

    @router.post("/setup")
    @public
    def setup(body: SetupRequest, request: Request) -> JSONResponse:
        with setup_lock:
            token = services.setup_token
            if (
                token is None
                or services.users.count() > 0
                or not hmac.compare_digest(body.token.encode(), token.encode())
            ):
                raise HTTPException(403, "set-up is closed or the token is wrong")
            try:
                check_name(body.name)  # checked before the log hears of it: a refused set-up is no change
                check_password(body.password)
                # The leaf first: if the log cannot take it, no administrator comes to be.
                services.record("user.create", body.name, "admin", user=body.name, role_given="admin", via="setup")
                user = services.users.add(body.name, body.password, Role.ADMIN)
            except UserError as exc:
                raise HTTPException(400, str(exc)) from exc
            services.setup_token = None
        return _session_response(services, user, request)

    @router.post("/logout")
    def logout(viewer: CurrentViewer) -> JSONResponse:
        services.record("logout", viewer.name, viewer.role)
        services.sessions.revoke(viewer.session_token)
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/me")
    def me(viewer: CurrentViewer) -> dict[str, Any]:
        return {"name": viewer.name, "role": viewer.role, "csrf": viewer.csrf_token, "staff": viewer.staff}

    return router


def _throttle_keys(request: Request, name: str) -> tuple[str, str]:
    """Per client and account, and per client: never per account alone, or anyone could lock anyone out."""
    client = request.client.host if request.client else "?"
    return f"pair:{client}\0{name.casefold()}", f"addr:{client}"


def _session_response(services: Services, user: User, request: Request) -> JSONResponse:
    issued = services.sessions.create(user)
    response = JSONResponse({"name": user.name, "role": str(user.role), "csrf": issued.csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(issued.expires_at - time.time()),
        httponly=True,
        samesite="strict",
        # Behind a TLS proxy the browser speaks HTTPS even though this hop is plain HTTP.
        secure=services.config.server.tls or services.config.server.behind_tls_proxy or request.url.scheme == "https",
        path="/",
    )
    return response
