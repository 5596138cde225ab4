"""Unmask requests, their approvals and revoked key holders, in SQLite.

A request row keeps the exact canonical bytes the key holders sign, so an approval can only ever
be checked against what was asked. Approval ids are unique: a replayed approval is refused by
the database itself, whatever the caller forgets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from veilwatch.errors import StorageError
from veilwatch.storage.db import Database
from veilwatch.storage.models import ApprovalRow, RevokedHolderRow, UnmaskRequestRow

__all__ = ["ReplayedApprovalError", "StoredApproval", "StoredRequest", "UnmaskStatus", "UnmaskStore"]

UnmaskStatus = Literal["pending", "executed", "refused", "expired"]


class ReplayedApprovalError(StorageError):
    """This approval (by its id) was handed in before."""


@dataclass(frozen=True)
class StoredRequest:
    """An unmask request as stored."""

    id: str
    camera: str
    start_at: float
    end_at: float
    reason: str
    requester: str
    created_at: float
    expires_at: float
    status: UnmaskStatus
    canonical: bytes
    approvers: tuple[str, ...]
    finished_at: float | None
    note: str


@dataclass(frozen=True)
class StoredApproval:
    """One approval as handed in (its body is the holder's signed JSON)."""

    holder: str
    approval_id: str
    received_at: float
    body: str


class UnmaskStore:
    """Requests, approvals and revocations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, request: StoredRequest) -> None:
        """Store a new pending request."""
        row = UnmaskRequestRow(
            id=request.id,
            camera=request.camera,
            start_at=request.start_at,
            end_at=request.end_at,
            reason=request.reason,
            requester=request.requester,
            created_at=request.created_at,
            expires_at=request.expires_at,
            status=request.status,
            canonical=request.canonical.decode("utf-8"),
            approvers=json.dumps(list(request.approvers)),
            finished_at=request.finished_at,
            note=request.note,
        )
        self._db.write(lambda session: session.add(row))

    def get(self, request_id: str) -> StoredRequest | None:
        """One request by id."""
        return self._db.read(lambda session: _maybe(session.get(UnmaskRequestRow, request_id)))

    def recent(self, limit: int = 200) -> list[StoredRequest]:
        """The latest requests, newest first."""
        statement = select(UnmaskRequestRow).order_by(UnmaskRequestRow.created_at.desc()).limit(limit)
        return self._db.read(lambda session: [_request(row) for row in session.scalars(statement)])

    def finish(self, request_id: str, status: UnmaskStatus, at: float, approvers: tuple[str, ...], note: str) -> None:
        """Close a pending request (executed, refused or expired)."""

        def update(session: Session) -> None:
            row = session.get(UnmaskRequestRow, request_id)
            if row is None:
                raise StorageError(f"no unmask request {request_id!r}")
            if row.status != "pending":
                raise StorageError(f"unmask request {request_id} is already {row.status}")
            row.status, row.finished_at, row.approvers, row.note = status, at, json.dumps(list(approvers)), note

        self._db.write(update)

    def add_approval(self, request_id: str, approval: StoredApproval) -> None:
        """Keep an approval; ReplayedApprovalError when its id was seen before."""
        row = ApprovalRow(
            request_id=request_id,
            holder=approval.holder,
            approval_id=approval.approval_id,
            received_at=approval.received_at,
            body=approval.body,
        )
        try:
            self._db.write(lambda session: session.add(row))
        except IntegrityError as exc:
            raise ReplayedApprovalError("this approval was already handed in (replayed)") from exc

    def seen_approval(self, approval_id: str) -> bool:
        """Whether an approval with this id was handed in before (for any request)."""
        statement = select(ApprovalRow.id).where(ApprovalRow.approval_id == approval_id)
        return self._db.read(lambda session: session.scalars(statement).first() is not None)

    def approvals(self, request_id: str) -> list[StoredApproval]:
        """The approvals of a request, in the order they came."""
        statement = select(ApprovalRow).where(ApprovalRow.request_id == request_id).order_by(ApprovalRow.id)
        return self._db.read(
            lambda session: [
                StoredApproval(row.holder, row.approval_id, row.received_at, row.body)
                for row in session.scalars(statement)
            ]
        )

    def revoke(self, holder: str, at: float, by: str) -> None:
        """Stop accepting a key holder's approvals (idempotent)."""

        def upsert(session: Session) -> None:
            if session.get(RevokedHolderRow, holder) is None:
                session.add(RevokedHolderRow(name=holder, revoked_at=at, revoked_by=by))

        self._db.write(upsert)

    def revoked(self) -> set[str]:
        """Names of revoked key holders."""
        return self._db.read(lambda session: set(session.scalars(select(RevokedHolderRow.name))))


def _request(row: UnmaskRequestRow) -> StoredRequest:
    status: UnmaskStatus = row.status  # type: ignore[assignment]  # the CHECK constraint keeps it one of these
    return StoredRequest(
        id=row.id,
        camera=row.camera,
        start_at=row.start_at,
        end_at=row.end_at,
        reason=row.reason,
        requester=row.requester,
        created_at=row.created_at,
        expires_at=row.expires_at,
        status=status,
        canonical=row.canonical.encode("utf-8"),
        approvers=tuple(json.loads(row.approvers)),
        finished_at=row.finished_at,
        note=row.note,
    )


def _maybe(row: UnmaskRequestRow | None) -> StoredRequest | None:
    return _request(row) if row is not None else None
