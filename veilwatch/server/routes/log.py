"""The tamper-evident log in public: checkpoints, entries, proofs, and witness cosignatures.

Anyone may read the log and check it (`veilwatch audit verify --server`), so every route here is
public. Witnesses post cosignatures without a session: a public POST, which the auth middleware
lets through only without a foreign Origin (witnesses are programs, not browsers, and a page on
another site cannot post here), and which is stored only if it verifies under a configured
witness key and cosigns a checkpoint this log signed. Bodies are small and bounded.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from veilwatch.audit.log import AuditLog
from veilwatch.audit.merkle import ProofError
from veilwatch.errors import AuditError, LogVerificationError
from veilwatch.server.auth import public

T = TypeVar("T")

MAX_PAGE = 1000  # entries per request
MAX_COSIGNATURE_BYTES = 16 * 1024
NOTE_TYPE = "text/plain; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}
Count = Annotated[int, Query(ge=0)]


def log_routes(audit: AuditLog, witnesses: Sequence[str]) -> APIRouter:
    """The log's routes over one log and its accepted witness keys."""
    router = APIRouter(prefix="/api/log")

    @router.get("/checkpoint")
    @public
    def checkpoint() -> Response:
        return Response(_served(audit.cosigned_checkpoint), media_type=NOTE_TYPE, headers=NO_STORE)

    @router.get("/entries")
    @public
    def entries(start: Count = 0, end: Annotated[int | None, Query(ge=0)] = None) -> dict[str, Any]:
        size = _served(audit.size)
        stop = min(size, start + MAX_PAGE) if end is None else end
        if stop - start > MAX_PAGE:
            raise HTTPException(400, f"at most {MAX_PAGE} entries per request")
        data = _served(lambda: audit.entries(start, stop))
        hashes = _served(lambda: audit.leaf_hashes(start, stop))
        return {"start": start, "end": stop, "size": size, "entries": _b64s(data), "hashes": _b64s(hashes)}

    @router.get("/proof/inclusion")
    @public
    def inclusion(index: Count, size: Count) -> dict[str, Any]:
        proof = _served(lambda: audit.inclusion(index, size))
        leaf = _served(lambda: audit.leaf_hash_at(index))
        return {"index": index, "size": size, "leaf_hash": _b64(leaf), "proof": _b64s(proof)}

    @router.get("/proof/consistency")
    @public
    def consistency(first: Count, second: Count) -> dict[str, Any]:
        proof = _served(lambda: audit.consistency(first, second))
        return {"first": first, "second": second, "proof": _b64s(proof)}

    @router.post("/cosignature")
    @public
    async def cosignature(request: Request) -> dict[str, Any]:
        note = await _bounded_text(request)
        accepted = await asyncio.to_thread(_served, lambda: audit.add_cosignature(note, witnesses))
        return {"accepted": list(accepted)}

    return router


def _served(call: Callable[[], T]) -> T:
    """Run a log call; bad arguments are the client's fault (400), a failing log is ours (503)."""
    try:
        return call()
    except ProofError as exc:
        raise HTTPException(400, str(exc)) from exc
    except LogVerificationError as exc:
        raise HTTPException(400, str(exc)) from exc
    except AuditError as exc:
        raise HTTPException(503, "the audit log is unavailable") from exc


async def _bounded_text(request: Request) -> str:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_COSIGNATURE_BYTES:
            raise HTTPException(413, f"a cosigned checkpoint is at most {MAX_COSIGNATURE_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "a cosigned checkpoint is UTF-8 text") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64s(values: Sequence[bytes]) -> list[str]:
    return [_b64(v) for v in values]
