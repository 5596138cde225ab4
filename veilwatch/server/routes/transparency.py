"""The public transparency page: what the cameras film and why, who watches, every unmask, the log.

Public by declaration: the people filmed have no account here. It shows no pictures and no
visitor names (staff are named: the watched may know their watchers).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from veilwatch.config import CameraConfig
from veilwatch.server.auth import public
from veilwatch.server.context import STAFF_ROLES, page
from veilwatch.server.services import Services
from veilwatch.storage.unmask_requests import StoredRequest

WATCH_KINDS = ("view.start", "playback", "export", "ptz.move", "unmask.fetch")
RECENT = 50


def transparency(services: Services) -> APIRouter:
    """Routes of the transparency page and its data."""
    router = APIRouter()

    @router.get("/transparency", response_class=HTMLResponse)
    @public
    def transparency_page() -> HTMLResponse:
        return page("transparency.html")

    @router.get("/api/transparency")
    @public
    def transparency_data() -> dict[str, Any]:
        return {
            "cameras": [_camera(services, camera) for camera in services.config.cameras],
            "unmasks": [_unmask(r) for r in services.unmasks.recent()],
            "watched": _watched(services),
            "vault": _vault(services),
            "log": {
                "checkpoint": services.audit.cosigned_checkpoint(),
                "verifier_key": services.audit.verifier_key,
                "size": services.audit.size(),
            },
        }

    return router


def _vault(services: Services) -> dict[str, Any] | None:
    vault = services.vault
    if vault is None:
        return None
    holders = [holder.name for holder in vault.holders]
    # The digest lets holders and the public notice a swapped vault.json (it names the day keys).
    return {"k": vault.k, "n": vault.n, "holders": holders, "sha256": vault.digest().hex(), "last_day": vault.last_day}


def _camera(services: Services, camera: CameraConfig) -> dict[str, Any]:
    watchers = services.presence.watchers(camera.name)
    return {
        "name": camera.name,
        "location": camera.location,
        "purpose": camera.purpose,
        "retention_days": camera.retention_days,
        "records": camera.record,
        "steerable": camera.steerable,
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


def _watched(services: Services) -> list[dict[str, Any]]:
    rows = []
    for action in services.actions.recent(limit=RECENT, kinds=WATCH_KINDS):
        who = action.actor if action.role in STAFF_ROLES else "a visitor"
        rows.append({"at": action.at, "actor": who, "kind": action.kind, "camera": action.camera})
    return rows
