"""Users: names, roles and argon2id password hashes.

Hashing runs in the caller's thread, never on the database writer (an argon2 hash takes a
tenth of a second and 64 MiB on purpose; the writer must not stall on it). `User` carries no hash:
the hash never leaves this module.
"""

from __future__ import annotations

import builtins
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from veilwatch.access import Role
from veilwatch.errors import UnknownUserError, UserError
from veilwatch.storage.db import Database
from veilwatch.storage.models import SessionRow, UserRow

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "NAME_PATTERN", "Role", "User", "UserStore"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_PASSWORD_LENGTH = 10
# Longer passwords are no safer and would let anyone make the server hash megabytes per request.
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class User:
    """A user as the rest of veilwatch sees them: never with the password hash."""

    id: int
    name: str
    role: Role
    epoch: int  # grows on each password or role change; sessions of older epochs are void


def _user(row: UserRow) -> User:
    return User(id=row.id, name=row.name, role=Role(row.role), epoch=row.epoch)


def check_name(name: str) -> None:
    """Raise UserError unless `name` is 1-64 of A-Z a-z 0-9 _ . -."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"invalid user name {name[:80]!r}: use 1 to 64 of A-Z a-z 0-9 _ . -")


def check_password(password: str) -> None:
    """Raise UserError unless the password has 10 to 1024 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")


class UserStore:
    """Adds, checks and changes users in one database."""

    def __init__(
        self, db: Database, *, hasher: PasswordHasher | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's (RFC 9106) defaults
        self._clock = clock
        # Checked against when the name is unknown, so that a miss costs as long as a hit and
        # response times do not tell which names exist.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def count(self) -> int:
        """How many users there are."""
        return self._db.read(lambda s: s.scalar(select(func.count()).select_from(UserRow)) or 0)

    def add(self, name: str, password: str, role: Role) -> User:
        """Add a user; raise UserError for an invalid or taken name or a weak password."""
        check_name(name)
        check_password(password)
        role = Role(role)
        password_hash = self._hasher.hash(password)
        now = self._clock()

        def insert(session: Session) -> User:
            row = UserRow(name=name, password_hash=password_hash, role=role.value, created_at=now, epoch=0)
            session.add(row)
            session.flush()
            return _user(row)

        try:
            return self._db.write(insert)
        except IntegrityError as exc:
            raise UserError(f"user {name!r} already exists") from exc

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is theirs, else None (in about the same time either way)."""
        found = self._db.read(lambda s: _with_hash(s, name)) if NAME_PATTERN.fullmatch(name) else None
        if found is None:
            self._check(self._dummy_hash, password)
            return None
        user, stored = found
        if not self._check(stored, password):
            return None
        if self._hasher.check_needs_rehash(stored):
            self._rehash(user.id, stored, password)
        return user

    def _check(self, stored: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _rehash(self, user_id: int, old_hash: str, password: str) -> None:
        new_hash = self._hasher.hash(password)

        def update(session: Session) -> None:
            row = session.get(UserRow, user_id)
            # Only if nobody changed the password meanwhile; not a credential change, so the epoch stays.
            if row is not None and row.password_hash == old_hash:
                row.password_hash = new_hash

        self._db.write(update)

    def get(self, user_id: int) -> User | None:
        """The user with this id, if any."""

        def find(session: Session) -> User | None:
            row = session.get(UserRow, user_id)
            return _user(row) if row is not None else None

        return self._db.read(find)

    def by_name(self, name: str) -> User | None:
        """The user with this name (any letter case), if any."""
        if not NAME_PATTERN.fullmatch(name):
            return None
        found = self._db.read(lambda s: _with_hash(s, name))
        return found[0] if found else None

    def list(self) -> builtins.list[User]:
        """Every user, by name."""
        return self._db.read(lambda s: [_user(row) for row in s.scalars(select(UserRow).order_by(UserRow.name))])

    def set_password(self, name: str, password: str) -> User:
        """Change a password; every session of the user ends at once."""
        check_password(password)
        password_hash = self._hasher.hash(password)

        def change(row: UserRow) -> None:
            row.password_hash = password_hash

        return self._change(name, change)

    def set_role(self, name: str, role: Role) -> User:
        """Change a role; every session of the user ends at once."""
        role = Role(role)

        def change(row: UserRow) -> None:
            row.role = role.value

        return self._change(name, change)

    def _change(self, name: str, change: Callable[[UserRow], None]) -> User:
        def apply(session: Session) -> User:
            row = _row_by_name(session, name)
            change(row)
            # The epoch revokes every session, even one being created right now with the old epoch;
            # deleting the rows as well just keeps the table small.
            row.epoch += 1
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
            session.flush()
            return _user(row)

        return self._db.write(apply)

    def remove(self, name: str) -> None:
        """Delete a user and their sessions (their past actions stay in the log, by name)."""
        self._db.write(lambda s: s.delete(_row_by_name(s, name)))


def _row_by_name(session: Session, name: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.name == name)) if NAME_PATTERN.fullmatch(name) else None
    if row is None:
        raise UnknownUserError(f"no user named {name[:80]!r}")
    return row


def _with_hash(session: Session, name: str) -> tuple[User, str] | None:
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    return (_user(row), row.password_hash) if row is not None else None
