"""The tables, as typed SQLAlchemy models. The schema itself is made by the migrations.

Times are UTC seconds since the epoch as floats (`time.time()`); recording paths are relative to
the data folder. Rows are private to `veilwatch.storage`: its stores hand out frozen dataclasses
instead, so that no ORM object (nor a password hash) leaves the package.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from veilwatch.access import Role

# Longest user and camera names; the stores check names against their patterns before this.
NAME_LENGTH = 64
SEGMENT_STATUSES = ("writing", "complete")
# AUTOINCREMENT: SQLite would otherwise hand the id of a deleted row to the next one, and a
# link, a log entry or a cached id naming an old segment or user would name a new one.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of the storage models."""

    # Pinned, because SQLAlchemy 2.0 and 2.1 map `float` to different types by default.
    type_annotation_map: dict[Any, Any] = {float: Double}  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)


class UserRow(Base):
    """A person who can log in. `epoch` grows on every password or role change, revoking sessions."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", tuple(Role)), name="ck_users_role"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    # NOCASE: "Alice" and "alice" are one user, so nobody can pose as another in the action log.
    name: Mapped[str] = mapped_column(String(NAME_LENGTH, collation="NOCASE"), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float]
    epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))


class SessionRow(Base):
    """A login. Only the SHA-256 of its token is kept, so a copy of the database logs nobody in."""

    __tablename__ = "sessions"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float]
    last_seen_at: Mapped[float]
    expires_at: Mapped[float]
    epoch: Mapped[int]  # the user's epoch when the session was made; stale once they differ


class SegmentRow(Base):
    """One recorded video file of one camera."""

    __tablename__ = "segments"
    __table_args__ = (
        CheckConstraint(_one_of("status", SEGMENT_STATUSES), name="ck_segments_status"),
        Index("ix_segments_camera_start_at", "camera", "start_at"),
        Index("ix_segments_start_at", "start_at"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    camera: Mapped[str] = mapped_column(String(NAME_LENGTH))
    path: Mapped[str] = mapped_column(String(512), unique=True)
    start_at: Mapped[float]
    end_at: Mapped[float | None]
    bytes: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    frames: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(8))


class ActionRow(Base):
    """One control action: who did what, when, to which camera. Never passwords or pixels."""

    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_at", "at"),
        Index("ix_actions_camera_at", "camera", "at"),
        Index("ix_actions_kind_id", "kind", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[float]
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    details: Mapped[str] = mapped_column(Text, default="{}", server_default=text("'{}'"))
    log_index: Mapped[int | None]  # the record's leaf in the tamper-evident log (None: before the log existed)


class SealedChunkRow(Base):
    """One sealed file of raw face regions (ciphertext only; see sealed_faces.py)."""

    __tablename__ = "sealed_chunks"
    __table_args__ = (Index("ix_sealed_chunks_camera_start_at", "camera", "start_at"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    camera: Mapped[str] = mapped_column(String(NAME_LENGTH))
    start_at: Mapped[float]
    end_at: Mapped[float]
    day: Mapped[str] = mapped_column(String(10))  # the key epoch that can open it
    path: Mapped[str] = mapped_column(String(512), unique=True)
    frames: Mapped[int]
    bytes: Mapped[int]


UNMASK_STATUSES = ("pending", "executed", "refused", "expired")


class UnmaskRequestRow(Base):
    """A request to reveal one camera's faces over a time range, with its reason (see veilwatch/unmask)."""

    __tablename__ = "unmask_requests"
    __table_args__ = (
        CheckConstraint(_one_of("status", UNMASK_STATUSES), name="ck_unmask_requests_status"),
        Index("ix_unmask_requests_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera: Mapped[str] = mapped_column(String(NAME_LENGTH))
    start_at: Mapped[float]
    end_at: Mapped[float]
    reason: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[float]
    expires_at: Mapped[float]
    status: Mapped[str] = mapped_column(String(8))
    canonical: Mapped[str] = mapped_column(Text)  # the request as approvers signed it
    approvers: Mapped[str] = mapped_column(Text, default="[]", server_default=text("'[]'"))
    finished_at: Mapped[float | None]
    note: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))


class ApprovalRow(Base):
    """One key holder's approval of an unmask request (its shares are encrypted to the request's key)."""

    __tablename__ = "approvals"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("unmask_requests.id", ondelete="CASCADE"), index=True)
    holder: Mapped[str] = mapped_column(String(NAME_LENGTH))
    approval_id: Mapped[str] = mapped_column(String(64), unique=True)  # a replayed approval is refused
    received_at: Mapped[float]
    body: Mapped[str] = mapped_column(Text)


class RevokedHolderRow(Base):
    """A key holder whose approvals are no longer accepted."""

    __tablename__ = "revoked_holders"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    revoked_at: Mapped[float]
    revoked_by: Mapped[str] = mapped_column(String(NAME_LENGTH))


# The tamper-evident log (veilwatch.audit). Its four tables are append-only: triggers refuse
# every UPDATE and DELETE, so that no code path (retention included) can rewrite history.


class AuditLeafRow(Base):
    """One entry of the tamper-evident log: the canonical bytes of one event, at its index."""

    __tablename__ = "audit_leaves"

    idx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    appended_at: Mapped[float]


class AuditNodeRow(Base):
    """The hash of one perfect subtree of the log (level 0: a leaf's hash), kept so proofs never re-hash the log."""

    __tablename__ = "audit_nodes"
    __table_args__ = (
        CheckConstraint("length(digest) = 32", name="ck_audit_nodes_digest"),
        {"sqlite_with_rowid": False},
    )

    level: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpointRow(Base):
    """A checkpoint the log signed (the signed note itself, which is the only source of its root)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_size", "size"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int]
    signed_at: Mapped[float]
    note: Mapped[str] = mapped_column(Text)


class AuditCosignatureRow(Base):
    """A witness's verified cosignature of one of the log's checkpoints (its signature line)."""

    __tablename__ = "audit_cosignatures"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "witness", "key_id", "cosigned_at", name="uq_audit_cosignatures"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("audit_checkpoints.id"), index=True)
    witness: Mapped[str] = mapped_column(String(256))
    key_id: Mapped[str] = mapped_column(String(8))
    cosigned_at: Mapped[int]  # the witness's own timestamp, POSIX seconds
    received_at: Mapped[float]
    line: Mapped[str] = mapped_column(Text)
