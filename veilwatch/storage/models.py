"""The tables, as typed SQLAlchemy models. The schema itself is made by the migrations.

Times are UTC seconds since the epoch as floats (`time.time()`); recording paths are relative to
the data folder. Rows are private to `veilwatch.storage`: its stores hand out frozen dataclasses
instead, so that no ORM object (nor a password hash) leaves the package.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, Double, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from veilwatch.storage.roles import Role

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
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[float]
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    details: Mapped[str] = mapped_column(Text, default="{}", server_default=text("'{}'"))
