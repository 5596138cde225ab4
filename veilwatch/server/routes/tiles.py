"""The log as C2SP tlog-tiles under `/log/`: `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`.

The files are written by the log itself (`veilwatch.audit.tiles`) into `<data>/log/` while the
tree grows, so any static web server can serve that folder in place of these routes. Tiles and
bundles never change once written, so they are served as immutable; the checkpoint is the latest
*published* one (with enough witness cosignatures, `[audit] witness_quorum`) and is never cached.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from veilwatch.audit.log import AuditLog
from veilwatch.errors import AuditError
from veilwatch.server.auth import public

PREFIX = "/log"
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
NO_CACHE = {"Cache-Control": "no-cache"}


def tile_routes(audit: AuditLog) -> APIRouter:
    """The tile routes over one log (which must have been opened with a tile folder)."""
    router = APIRouter(prefix=PREFIX)

    @router.get("/checkpoint")
    @public
    def checkpoint() -> Response:
        try:
            note = audit.published_checkpoint()
        except AuditError as exc:
            raise HTTPException(503, "the audit log is unavailable") from exc
        if note is None:
            raise HTTPException(404, "no checkpoint is published yet")
        return Response(note, media_type="text/plain; charset=utf-8", headers=NO_CACHE)

    @router.get("/tile/{path:path}")
    @public
    def tile(path: str) -> Response:
        try:
            data = audit.tiles.read(f"tile/{path}") if audit.tiles is not None else None
        except AuditError as exc:
            raise HTTPException(503, "the audit log is unavailable") from exc
        if data is None:
            raise HTTPException(404, "no such tile")
        return Response(data, media_type="application/octet-stream", headers=IMMUTABLE)

    return router
