"""Log-in, log-out, first-run set-up and "who am I" — the only routes that create sessions."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from veilwatch.access import Role
from veilwatch.config import ServerConfig
from veilwatch.errors import UserError
from veilwatch.room.setup import SetupClosedError
from veilwatch.server.auth import SESSION_COOKIE, public
from veilwatch.server.context import RequestBody
from veilwatch.server.deps import (
    CurrentViewer,
    RecorderDep,
    ServerDep,
    SessionsDep,
    SetupDep,
    ThrottleDep,
    UsersDep,
)
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.sessions import SessionStore
from veilwatch.storage.users import User, check_name, check_password


class Credentials(RequestBody):
    """A login attempt."""

    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class SetupRequest(Credentials):
    """The first administrator, created with the one-time set-up token."""

    token: str = Field(max_length=128)


class MeOut(BaseModel):
    """Who is asking: name, role, the session's CSRF token, and whether they are staff."""

    name: str
    role: Role
    csrf: str
    staff: bool


class OkOut(BaseModel):
    """Done."""

    ok: bool


def sessions() -> APIRouter:
    """Routes that open and close sessions."""
    router = APIRouter(prefix="/api")

    @router.post("/login")
    @public
    def login(
        credentials: Credentials, request: Request, throttle: ThrottleDep, users: UsersDep,
        recorder: RecorderDep, store: SessionsDep, server: ServerDep,
    ) -> JSONResponse:  # fmt: skip
        pair, address = _throttle_keys(request, credentials.name)
        wait, stamp = throttle.attempt(pair, address)
        if wait > 0:
            headers = {"Retry-After": str(int(wait) + 1)}
            return JSONResponse({"detail": "too many failed logins; wait and try again"}, 429, headers)
        # Unknown names cost the same hash as known ones (see UserStore.verify): no telling which exist.
        user = users.verify(credentials.name, credentials.password)
        if user is None:
            # The log is public: the name typed (a visitor's, a staff member's, or a password pasted
            # into the name field) appears as an `attempt-` pseudonym of its own domain, whoever it
            # names, and the client's address not at all.
            recorder.record(ActionKind.LOGIN_FAILED, "system", "system", attempt=credentials.name[:64])
            raise HTTPException(401, "wrong name or password")
        throttle.succeeded(pair, address, stamp=stamp)
        recorder.record(ActionKind.LOGIN, user.name, user.role)
        return _session_response(store, server, user, request)

    @router.post("/setup")
    @public
    def setup(
        body: SetupRequest, request: Request, setup: SetupDep, users: UsersDep, recorder: RecorderDep,
        store: SessionsDep, server: ServerDep,
    ) -> JSONResponse:  # fmt: skip
        try:
            with setup.claim(body.token):
                check_name(body.name)  # checked before the log hears of it: a refused set-up is no change
                check_password(body.password)
                # The leaf first: if the log cannot take it, no administrator comes to be.
                recorder.record(
                    ActionKind.USER_CREATE, body.name, Role.ADMIN, user=body.name, role_given="admin", via="setup"
                )
                user = users.add(body.name, body.password, Role.ADMIN)
        except SetupClosedError as exc:
            raise HTTPException(403, str(exc)) from exc
        except UserError as exc:
            raise HTTPException(400, str(exc)) from exc
        return _session_response(store, server, user, request)

    _session_routes(router)
    return router


def _session_routes(router: APIRouter) -> None:
    """Routes of an open session: log out, and who am I."""

    @router.post("/logout")
    def logout(viewer: CurrentViewer, recorder: RecorderDep, store: SessionsDep) -> JSONResponse:
        recorder.record(ActionKind.LOGOUT, viewer.name, viewer.role)
        store.revoke(viewer.session_token)
        response = JSONResponse(OkOut(ok=True).model_dump())
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/me")
    def me(viewer: CurrentViewer) -> MeOut:
        return MeOut(name=viewer.name, role=viewer.role, csrf=viewer.csrf_token, staff=viewer.staff)


def _throttle_keys(request: Request, name: str) -> tuple[str, str]:
    """Per client and account, and per client: never per account alone, or anyone could lock anyone out."""
    client = request.client.host if request.client else "?"
    return f"pair:{client}\0{name.casefold()}", f"addr:{client}"


def _session_response(store: SessionStore, server: ServerConfig, user: User, request: Request) -> JSONResponse:
    issued = store.create(user)
    response = JSONResponse({"name": user.name, "role": str(user.role), "csrf": issued.csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(issued.expires_at - time.time()),
        httponly=True,
        samesite="strict",
        # Behind a TLS proxy the browser speaks HTTPS even though this hop is plain HTTP.
        secure=server.tls or server.behind_tls_proxy or request.url.scheme == "https",
        path="/",
    )
    return response
