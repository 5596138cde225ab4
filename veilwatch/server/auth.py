"""Authentication for every route unless the route itself says it is public.

`AuthMiddleware` (pure ASGI) finds the route a request will reach and, unless its endpoint is
marked `@public`, requires a valid session cookie — for pages, API calls, media and websockets
alike. There is no second, hand-kept list of open paths: a test walks the route table instead.
State-changing requests must also carry the session's CSRF token in `X-CSRF-Token`, and public
ones (login, set-up) must come from our own origin, and so must every websocket. Failed logins
are throttled per (client address, account) and per client address, never per account alone: a
stranger's wrong guesses must not lock the account's owner out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from veilwatch.access import Role, is_staff

SESSION_COOKIE = "vw_session"
CSRF_HEADER = b"x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_MARK = "__veilwatch_public__"
TOKEN_MARK = "__veilwatch_bearer__"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def public(endpoint: Endpoint) -> Endpoint:
    """Declare a route open to anyone; every other route requires a session."""
    setattr(endpoint, PUBLIC_MARK, True)
    return endpoint


def bearer_ok(token_name: str) -> Callable[[Endpoint], Endpoint]:
    """Also accept `Authorization: Bearer <token>` for this route (e.g. Prometheus)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, TOKEN_MARK, token_name)
        return endpoint

    return mark


def is_public(endpoint: object) -> bool:
    """Whether an endpoint was declared public."""
    return bool(getattr(endpoint, PUBLIC_MARK, False))


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the user behind the session, and the session's CSRF token."""

    user_id: int
    name: str
    role: Role
    csrf_token: str
    session_token: str

    @property
    def staff(self) -> bool:
        """Operators, auditors and admins are staff (shown by name to other watchers)."""
        return is_staff(self.role)


SessionLookup = Callable[[str], Viewer | None]
# (method, path, status, why, client address): a refused request, for the tamper-evident log.
DeniedHook = Callable[[str, str, int, str, str], None]


def _matches(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    for route in routes:
        if route.matches(scope)[0] == Match.FULL:
            return route
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            text: str = value.decode("latin-1")
            for part in text.split(";"):
                key_text, _, cookie = part.strip().partition("=")
                if key_text == name:
                    return cookie
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def same_origin(scope: Scope) -> bool:
    """True unless the request names an Origin (or Referer) other than the host it was sent to."""
    host = _header(scope, b"host")
    claimed = _header(scope, b"origin") or _header(scope, b"referer")
    if not claimed or not host:
        return True  # non-browser clients send neither; browsers always send Origin on POST and websockets
    return urlsplit(claimed).netloc == host


def same_secret(sent: str, expected: str) -> bool:
    """A constant-time comparison that also takes header text outside ASCII (compared as bytes, never a 500)."""
    # Headers are decoded as latin-1, so encoding them back gives the bytes sent.
    return hmac.compare_digest(sent.encode("latin-1", "replace"), expected.encode("utf-8"))


def route_marks(routes: Sequence[BaseRoute]) -> tuple[list[BaseRoute], list[tuple[BaseRoute, str]]]:
    """The routes declared public, and those that also take a bearer token, from their endpoints."""
    open_routes, token_routes = [], []
    for route in routes:
        endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
        if is_public(endpoint):
            open_routes.append(route)
        token_name = getattr(endpoint, TOKEN_MARK, None)
        if token_name:
            token_routes.append((route, str(token_name)))
    return open_routes, token_routes


class AuthMiddleware:
    """Require a session for every non-public route; check CSRF on state-changing requests."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        lookup: SessionLookup,
        tokens: dict[str, str],
        on_denied: DeniedHook | None = None,
    ) -> None:
        self._app = app
        self._routes = routes
        self._public, self._bearer = route_marks(routes)
        self._lookup = lookup
        self._tokens = tokens
        self._on_denied = on_denied

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if scope["type"] == "websocket" and not same_origin(scope):
            # Browsers send any page's cookies with a websocket, and no CORS stands in the way.
            await self._deny(scope, receive, send, 403, "cross-origin websocket refused")
            return
        if _matches(self._public, scope) is not None:
            if method in UNSAFE_METHODS and not same_origin(scope):
                await self._deny(scope, receive, send, 403, "cross-origin request refused")
                return
            await self._app(scope, receive, send)
            return
        for route, token_name in self._bearer:
            if _matches([route], scope) is not None and self._bearer_matches(scope, token_name):
                await self._app(scope, receive, send)
                return
        cookie = _cookie(scope, SESSION_COOKIE)
        viewer = self._lookup(cookie) if cookie else None
        if viewer is None:
            if self._template(scope) is None:
                # No such route (favicon.ico, a scanner's guess): the app's 404, as for anyone, and no
                # log leaf, or every anonymous request could grow the log and write its path into it.
                await self._app(scope, receive, send)
                return
            await self._deny(scope, receive, send, 401, "log in first")
            return
        if method in UNSAFE_METHODS:
            sent = _header(scope, CSRF_HEADER) or ""
            if not same_secret(sent, viewer.csrf_token) or not same_origin(scope):
                await self._deny(scope, receive, send, 403, "missing or wrong CSRF token")
                return
        scope.setdefault("state", {})["viewer"] = viewer
        await self._app(scope, receive, send)

    async def _deny(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        if self._on_denied is not None:
            # A refusal is served whatever the log says: it changes nothing but the log.
            # The route's template, not the path: a refused request cannot write text of its
            # choosing into the permanent public log.
            method, path = str(scope.get("method", "WEBSOCKET")), self._template(scope) or "?"
            client = scope.get("client") or ("?", 0)
            with contextlib.suppress(Exception):  # off the event loop: the log append waits for the disk
                await asyncio.to_thread(self._on_denied, method, path, status, message, str(client[0]))
        await _deny(scope, receive, send, status, message)

    def _template(self, scope: Scope) -> str | None:
        """The path template of the route this request is for; None when no route matches."""
        for route in self._routes:
            if route.matches(scope)[0] != Match.NONE:
                return str(getattr(route, "path", "?"))
        return None

    def _bearer_matches(self, scope: Scope, token_name: str) -> bool:
        expected = self._tokens.get(token_name)
        sent = _header(scope, b"authorization") or ""
        return bool(expected) and same_secret(sent, f"Bearer {expected}")


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status})
        return
    accepts_html = "text/html" in (_header(scope, b"accept") or "")
    if status == 401 and accepts_html and scope.get("method") == "GET":
        await send({"type": "http.response.start", "status": 303, "headers": [(b"location", b"/login")]})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class LoginThrottle:
    """Slows password guessing: after `free` attempts in `window_s` that did not succeed, each key waits, doubling.

    An attempt is counted when it is let through (`attempt`), before the password is checked, so that
    requests arriving together cannot all pass the check before any failure is counted; a success
    takes its own count back.
    """

    free: int = 5
    window_s: float = 900.0
    base_delay_s: float = 30.0
    max_delay_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, *keys: str) -> tuple[float, float]:
        """(seconds to wait, 0: go ahead; the stamp this attempt was counted under, for `succeeded`)."""
        now = self.clock()
        with self._lock:  # the check and the count are one step
            wait = max((self._wait(key, now) for key in keys), default=0.0)
            if wait <= 0:
                for key in keys:
                    self._failures.setdefault(key, []).append(now)
        return float(wait), now

    def _wait(self, key: str, now: float) -> float:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)  # no empty lists left behind by every passing address
        excess = len(recent) - self.free
        if excess < 0:
            return 0.0
        delay = min(self.base_delay_s * 2**excess, self.max_delay_s)
        return float(max(0.0, recent[-1] + delay - now))

    def succeeded(self, forget: str, *others: str, stamp: float) -> None:
        """A right password: forget `forget`'s failures; take back only this attempt's count from the others."""
        with self._lock:
            self._failures.pop(forget, None)
            for key in others:
                stamps = self._failures.get(key, [])
                with contextlib.suppress(ValueError):
                    stamps.remove(stamp)
