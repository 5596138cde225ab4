"""Login sessions: bearer tokens of which only a SHA-256 is stored.

A token is 32 random bytes, so its SHA-256 needs no salt or slow hash: it cannot be guessed,
and a stolen copy of the database (or a backup) holds nothing that logs anyone in. A session
ends when it expires, when it is revoked, when its user is removed, or when the user's epoch
moves on (password or role changed), all checked on every lookup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, or_, select, update
from sqlalchemy.orm import Session

from veilwatch.access import Role
from veilwatch.errors import UnknownUserError
from veilwatch.storage.db import Database
from veilwatch.storage.models import SessionRow, UserRow
from veilwatch.storage.users import User

__all__ = ["DEFAULT_LIFETIME_S", "TOUCH_INTERVAL_S", "ActiveSession", "IssuedSession", "SessionStore"]

DEFAULT_LIFETIME_S = 12 * 3600.0
# last_seen_at is refreshed at most this often per session: every lookup writing would make
# each request a trip through the single writer thread.
TOUCH_INTERVAL_S = 60.0
# token_urlsafe(32) is 43 characters; anything much longer is not ours and is not even hashed.
_MAX_TOKEN_LENGTH = 256


@dataclass(frozen=True)
class IssuedSession:
    """What a new login hands to the client, once: the token is not kept anywhere."""

    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True)
class ActiveSession:
    """A valid session, found by its token."""

    id: int
    user: User
    csrf_token: str = field(repr=False)
    created_at: float
    last_seen_at: float
    expires_at: float


def token_digest(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    """Creates, finds and revokes login sessions."""

    def __init__(
        self, db: Database, lifetime_s: float = DEFAULT_LIFETIME_S, *, clock: Callable[[], float] = time.time
    ) -> None:
        if lifetime_s <= 0:
            raise ValueError(f"session lifetime must be positive, got {lifetime_s}")
        self._db = db
        self._lifetime_s = lifetime_s
        self._clock = clock

    def create(self, user: User) -> IssuedSession:
        """Start a session for `user`; raise UnknownUserError if they no longer exist."""
        token = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        now = self._clock()
        expires_at = now + self._lifetime_s

        def insert(session: Session) -> None:
            if session.get(UserRow, user.id) is None:
                raise UnknownUserError(f"no user with id {user.id}")
            # The caller's view of the epoch: if it is already stale, the session is born void.
            session.add(
                SessionRow(
                    token_hash=token_digest(token),
                    user_id=user.id,
                    csrf_token=csrf_token,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                    epoch=user.epoch,
                )
            )

        self._db.write(insert)
        return IssuedSession(token=token, csrf_token=csrf_token, expires_at=expires_at)

    def lookup(self, token: str) -> ActiveSession | None:
        """The session of this token, or None if unknown, expired, revoked or made stale."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        # Found by an index on the digest: timing can at most tell which digests exist, and
        # digests of 256-bit random tokens cannot be worked back into tokens.
        found = self._db.read(lambda s: _find(s, token_digest(token)))
        now = self._clock()
        if found is None or found.expires_at <= now:
            return None
        if now - found.last_seen_at < TOUCH_INTERVAL_S:
            return found
        self._db.write(lambda s: _touch(s, found.id, now))
        return dataclasses.replace(found, last_seen_at=now)

    def revoke(self, token: str) -> bool:
        """End the session of this token (logout); whether there was one."""
        digest = token_digest(token)
        return self._db.write(lambda s: _deleted(s, delete(SessionRow).where(SessionRow.token_hash == digest))) > 0

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user; how many there were."""
        return self._db.write(lambda s: _deleted(s, delete(SessionRow).where(SessionRow.user_id == user_id)))

    def purge(self) -> int:
        """Delete expired and stale sessions (lookups already ignore them); how many."""
        now = self._clock()
        current = select(UserRow.id).where(UserRow.id == SessionRow.user_id, UserRow.epoch == SessionRow.epoch)
        statement = delete(SessionRow).where(or_(SessionRow.expires_at <= now, ~current.exists()))
        return self._db.write(lambda s: _deleted(s, statement))


def _find(session: Session, digest: str) -> ActiveSession | None:
    row = session.execute(
        select(SessionRow, UserRow)
        .join(UserRow, SessionRow.user_id == UserRow.id)
        .where(SessionRow.token_hash == digest, SessionRow.epoch == UserRow.epoch)
    ).first()
    if row is None:
        return None
    found, user = row
    return ActiveSession(
        id=found.id,
        user=User(id=user.id, name=user.name, role=Role(user.role), epoch=user.epoch),
        csrf_token=found.csrf_token,
        created_at=found.created_at,
        last_seen_at=found.last_seen_at,
        expires_at=found.expires_at,
    )


def _touch(session: Session, session_id: int, now: float) -> None:
    session.execute(
        update(SessionRow).where(SessionRow.id == session_id, SessionRow.last_seen_at < now).values(last_seen_at=now)
    )


def _deleted(session: Session, statement: Delete) -> int:
    # A DELETE returns a CursorResult, which SQLAlchemy types as the general Result.
    return cast("CursorResult[Any]", session.execute(statement)).rowcount
