"""`veilwatch witness serve`: a C2SP tlog-witness over HTTP (`POST /add-checkpoint`), a web app of its own."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import Response

from veilwatch.audit.tlogwitness import MAX_BODY_BYTES, WitnessService


def witness_app(service: WitnessService) -> FastAPI:
    """The witness's app: add-checkpoint only (no docs, no other routes)."""
    app = FastAPI(title="veilwatch witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return Response("request too large\n", status_code=413, media_type="text/plain")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Response("not UTF-8\n", status_code=400, media_type="text/plain")
        answer = await asyncio.to_thread(service.add_checkpoint, text)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return app
