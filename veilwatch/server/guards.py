"""Pure-ASGI guards in front of the app: a Host allow-list and a request body limit.

They run before any route (and before the auth middleware), so nothing they refuse is parsed: a
body over the limit is refused by its Content-Length, or as soon as its chunks pass the limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_BYTES = 1 << 20  # beyond this, a refused body is not read on: the connection is closed under it


class BodyTooLarge(HTTPException):
    """A request body over the limit (raised while it streams in; answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: at most {limit} bytes")


async def refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Answer a request (or close a websocket) with one JSON line, before the app sees it."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status})
        return
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"detail": message}).encode()})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11, httptools) refuses a malformed length itself
    return None


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413: by Content-Length, and while a chunked body streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await refuse(scope, send, 413, str(BodyTooLarge(self._max).detail))
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    await _drain(receive, message)
                    raise BodyTooLarge(self._max)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, limited, watched)
        except BodyTooLarge:
            if started:
                raise
            await refuse(scope, send, 413, str(BodyTooLarge(self._max).detail))


async def _drain(receive: Receive, message: Message) -> None:
    """Read on (and drop) the rest of a refused body, up to DRAIN_BYTES, so the client hears our 413 before we close."""
    drained = 0
    while message.get("more_body", False) and drained < DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))


def host_name(header: str) -> str:
    """The host of a Host header, without its port or IPv6 brackets, lower case."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if text.count(":") == 1 else text


class HostCheck:
    """Refuse (400) requests whose Host header names a host not in the allow-list (DNS rebinding, poisoned links)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self._app = app
        self._allowed = frozenset(name.lower() for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        host = next((value.decode("latin-1") for key, value in scope.get("headers", []) if key == b"host"), "")
        if host_name(host) not in self._allowed:
            await refuse(scope, send, 400, "unknown host: add it to server.allowed_hosts if clients use it")
            return
        await self._app(scope, receive, send)
