"""Unmask requests over HTTP: ask with a reason, hand in key holders' approvals, fetch the clip.

Staff only; what makes an unmask happen is K signed approvals from key holders, not a role.
Refusals are 4xx with the vault's one-line reason; the page is `/unmask`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from veilwatch.errors import ApprovalRefused, VaultError
from veilwatch.server.context import RequestBody, page
from veilwatch.server.deps import CamerasDep, CurrentViewer, RecorderDep, UnmaskDeskDep, UnmasksDep, see_camera
from veilwatch.storage.unmask_requests import StoredRequest, UnmaskStore
from veilwatch.vault.desk import NotYetWitnessedError, UnmaskDesk

MAX_SHARE_BYTES = 1_000_000
MAX_APPROVAL_BYTES = 100_000


class AskBody(RequestBody):
    """A new unmask request."""

    camera: str = Field(max_length=64)
    start: float = Field(description="UTC seconds")
    end: float = Field(description="UTC seconds")
    reason: str = Field(max_length=2000)
    region: tuple[int, int, int, int] | None = Field(
        None, description="reveal only faces touching x0, y0, x1, y1 (output pixels); none: every face"
    )


class ShareBody(RequestBody):
    """A key holder's approval made in the browser: their share file (base64) and passphrase."""

    share: str = Field(max_length=MAX_SHARE_BYTES * 2)
    passphrase: str = Field(max_length=1024, repr=False)


class RequestOut(BaseModel):
    """An unmask request as its asker and other staff see it."""

    id: str
    camera: str
    start: float
    end: float
    reason: str
    requester: str
    created_at: float
    expires_at: float
    status: str
    approvals: list[str]
    approvers: list[str]
    note: str
    region: list[int] | None
    clip_url: str | None


class DeskOut(BaseModel):
    """The vault's K of N, and the recent requests."""

    k: int
    n: int
    requests: list[RequestOut]


def unmask() -> APIRouter:
    """Routes of the unmask desk."""
    router = APIRouter()

    @router.get("/unmask", response_class=HTMLResponse)
    def unmask_page(viewer: CurrentViewer) -> HTMLResponse:
        return page("unmask.html")

    @router.get("/api/unmask")
    def list_requests(viewer: CurrentViewer, desk: UnmaskDeskDep, store: UnmasksDep) -> DeskOut:
        requests = [_request_out(store, desk, r, viewer.name) for r in store.recent()]
        return DeskOut(k=desk.vault.k, n=desk.vault.n, requests=requests)

    @router.post("/api/unmask")
    def ask(
        body: AskBody, viewer: CurrentViewer, desk: UnmaskDeskDep, store: UnmasksDep, cameras: CamerasDep,
        recorder: RecorderDep,
    ) -> RequestOut:  # fmt: skip
        camera = see_camera(cameras, recorder, body.camera, viewer)
        try:
            stored = desk.ask(camera.name, body.start, body.end, body.reason, viewer.name, viewer.role, body.region)
        except VaultError as exc:
            raise HTTPException(400, exc.one_line()) from exc
        return _request_out(store, desk, stored, viewer.name)

    @router.get("/api/unmask/{request_id}/request.json")
    def request_file(request_id: str, desk: UnmaskDeskDep) -> Response:
        try:
            canonical = desk.request(request_id).canonical()
        except VaultError as exc:
            raise HTTPException(404, exc.one_line()) from exc
        return Response(canonical, media_type="application/json", headers=_attachment(f"unmask-{request_id}.json"))

    _approving(router)
    return router


def _approving(router: APIRouter) -> None:
    """Routes that hand in approvals and fetch the clip."""

    @router.post("/api/unmask/{request_id}/approvals")
    async def hand_in(
        request_id: str, request: Request, viewer: CurrentViewer, desk: UnmaskDeskDep, store: UnmasksDep
    ) -> RequestOut:
        from veilwatch.vault.unmask import Approval

        body = await request.body()
        if len(body) > MAX_APPROVAL_BYTES:
            raise HTTPException(413, "approval too large")
        try:
            approval = Approval.from_json(body)
            # With the K-th approval the clip is made: off the event loop.
            stored = await asyncio.to_thread(desk.approve, request_id, approval, viewer.name, viewer.role)
        except VaultError as exc:
            raise HTTPException(_status(exc), exc.one_line()) from exc
        return _request_out(store, desk, stored, viewer.name)

    @router.post("/api/unmask/{request_id}/approve-with-share")
    def approve_with_share(
        request_id: str, body: ShareBody, viewer: CurrentViewer, desk: UnmaskDeskDep, store: UnmasksDep
    ) -> RequestOut:
        try:
            bundle = base64.b64decode(body.share, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(400, "the share file is not valid base64") from exc
        try:
            stored = desk.approve_with_share(request_id, bundle, body.passphrase, viewer.name, viewer.role)
        except VaultError as exc:
            raise HTTPException(_status(exc), exc.one_line()) from exc
        return _request_out(store, desk, stored, viewer.name)

    @router.get("/api/unmask/{request_id}/clip.mp4")
    def clip(request_id: str, viewer: CurrentViewer, desk: UnmaskDeskDep) -> Response:
        try:
            found = desk.clip(request_id, viewer.name, viewer.role)
        except NotYetWitnessedError as exc:
            raise HTTPException(409, exc.one_line(), headers={"Retry-After": "10"}) from exc
        except VaultError as exc:
            raise HTTPException(404, exc.one_line()) from exc
        return Response(found.data, media_type="video/mp4", headers=_attachment(f"unmasked-{request_id}.mp4"))


def _region(stored: StoredRequest) -> list[int] | None:
    from veilwatch.vault.unmask import UnmaskRequest

    region = UnmaskRequest.from_json(stored.canonical).region
    return list(region) if region else None


def _attachment(name: str) -> dict[str, str]:
    safe = "".join(c for c in name if c.isalnum() or c in ".-")[:80]
    return {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{safe}"'}


def _status(exc: VaultError) -> int:
    return 403 if isinstance(exc, ApprovalRefused) else 400


def _request_out(store: UnmaskStore, desk: UnmaskDesk, stored: StoredRequest, viewer: str) -> RequestOut:
    approvals = [a.holder for a in store.approvals(stored.id)]
    mine = stored.requester == viewer and desk.has_clip(stored.id)
    return RequestOut(
        id=stored.id, camera=stored.camera, start=stored.start_at, end=stored.end_at, reason=stored.reason,
        requester=stored.requester, created_at=stored.created_at, expires_at=stored.expires_at,
        status=stored.status, approvals=approvals, approvers=list(stored.approvers), note=stored.note,
        region=_region(stored), clip_url=f"/api/unmask/{stored.id}/clip.mp4" if mine else None,
    )  # fmt: skip
