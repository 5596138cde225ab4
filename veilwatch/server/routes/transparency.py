"""The public transparency page: what the cameras film and why, who watches, every unmask, the log.

Public by declaration: the people filmed have no account here. It shows no pictures and no
visitor names (staff are named: the watched may know their watchers).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from veilwatch.access import is_staff
from veilwatch.room.cameras import CameraRoom
from veilwatch.server.auth import public
from veilwatch.server.context import page
from veilwatch.server.deps import ActionsDep, AuditDep, CamerasDep, UnmasksDep, VaultDep
from veilwatch.storage.actions import ActionKind, ActionLog
from veilwatch.storage.unmask_requests import StoredRequest
from veilwatch.vault.public import VaultPublic

WATCH_KINDS = (
    ActionKind.VIEW_START,
    ActionKind.PLAYBACK,
    ActionKind.EXPORT,
    ActionKind.PTZ_MOVE,
    ActionKind.UNMASK_FETCH,
)
RECENT = 50


def transparency() -> APIRouter:
    """Routes of the transparency page and its data."""
    router = APIRouter()

    @router.get("/transparency", response_class=HTMLResponse)
    @public
    def transparency_page() -> HTMLResponse:
        return page("transparency.html")

    @router.get("/api/transparency")
    @public
    def transparency_data(
        cameras: CamerasDep, unmasks: UnmasksDep, audit: AuditDep, vault: VaultDep, actions: ActionsDep
    ) -> dict[str, Any]:
        return {
            "cameras": [_camera(camera) for camera in cameras],
            "unmasks": [_unmask(r) for r in unmasks.recent()],
            "watched": _watched(actions),
            "vault": _vault(vault),
            "log": {
                "checkpoint": audit.cosigned_checkpoint(),
                "verifier_key": audit.verifier_key,
                "size": audit.size(),
            },
        }

    return router


def _vault(vault: VaultPublic | None) -> dict[str, Any] | None:
    if vault is None:
        return None
    holders = [holder.name for holder in vault.holders]
    # The digest lets holders and the public notice a swapped vault.json (it names the day keys).
    return {"k": vault.k, "n": vault.n, "holders": holders, "sha256": vault.digest().hex(), "last_day": vault.last_day}


def _camera(camera: CameraRoom) -> dict[str, Any]:
    config, watchers = camera.config, camera.presence.watchers(camera.name)
    return {
        "name": config.name,
        "location": config.location,
        "purpose": config.purpose,
        "retention_days": config.retention_days,
        "records": config.record,
        "steerable": config.steerable,
        "watching": len(watchers.staff) + watchers.visitors,
        "staff_watching": list(watchers.staff),
    }


def _unmask(request: StoredRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "camera": request.camera,
        "start": request.start_at,
        "end": request.end_at,
        "reason": request.reason,
        "requester": request.requester,
        "approvers": list(request.approvers),
        "status": request.status,
        "created_at": request.created_at,
        "finished_at": request.finished_at,
        "region": _region(request),
    }


def _region(request: StoredRequest) -> list[int] | None:
    from veilwatch.vault.unmask import UnmaskRequest

    region = UnmaskRequest.from_json(request.canonical).region
    return list(region) if region else None


def _watched(actions: ActionLog) -> list[dict[str, Any]]:
    rows = []
    for action in actions.recent(limit=RECENT, kinds=WATCH_KINDS):
        who = action.actor if is_staff(action.role) else "a visitor"
        rows.append({"at": action.at, "actor": who, "kind": action.kind, "camera": action.camera})
    return rows
