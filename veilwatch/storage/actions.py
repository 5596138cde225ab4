"""The action log: every control action (who, what, when, which camera), in a canonical form.

Each action becomes an `ActionRecord`, whose `to_canonical_json()` bytes are what a later
tamper-evident (Merkle) log will hash, so they must never change for a stored record: sorted
keys, no whitespace, UTF-8, a version field `"v": 1`, the time as integer microseconds and no
floats at all (float text differs between languages and cannot be hashed reliably). Records
refuse detail keys that look like secrets or pictures, so a careless caller cannot put a
password or pixels into a log that is kept forever.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from veilwatch.access import Role
from veilwatch.storage.db import Database
from veilwatch.storage.models import ActionRow

__all__ = ["CANONICAL_VERSION", "SYSTEM", "ActionKind", "ActionLog", "ActionRecord"]

CANONICAL_VERSION = 1
SYSTEM = "system"  # actor and role of actions veilwatch takes by itself
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_ACTOR = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FORBIDDEN_KEY = re.compile(r"pass(word|wd|phrase)|secret|token|cookie|credential|hash|pixel|image|jpeg|png", re.I)
_MAX_INT = 2**53 - 1  # beyond this, JSON readers in other languages round integers
_MAX_STRING = 1024  # a longer detail string is more likely an encoded picture than a fact
_MAX_DEPTH = 4
_MAX_LENGTH = 64  # also for kinds and camera names


class ActionKind(StrEnum):
    """Every kind of action veilwatch writes: the recorder takes only these (a test walks the code to check).

    The values are the texts already in stored logs, so old logs stay readable: control events are
    past-tense (`control.granted`), the rest are nouns or verbs as first written. Reading accepts any
    lowercase dotted name, so a log written by a later version still opens.
    """

    CONFIG_LOAD = "config.load"
    AUTH_DENIED = "auth.denied"
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    USER_CREATE = "user.create"
    USER_PASSWORD = "user.password"
    USER_ROLE = "user.role"
    USER_REMOVE = "user.remove"
    VIEW_START = "view.start"
    VIEW_STOP = "view.stop"
    VIEW_SNAPSHOT = "view.snapshot"
    PTZ_MOVE = "ptz.move"
    CONTROL_GRANTED = "control.granted"
    CONTROL_QUEUED = "control.queued"
    CONTROL_RELEASED = "control.released"
    CONTROL_LEFT = "control.left"
    CONTROL_EXPIRED = "control.expired"
    CONTROL_TAKEOVER = "control.takeover"
    CONTROL_REFUSED = "control.refused"
    PLAYBACK = "playback"
    EXPORT = "export"
    EXPORT_FETCH = "export.fetch"
    UNMASK_REQUEST = "unmask.request"
    UNMASK_APPROVE = "unmask.approve"
    UNMASK_REFUSE = "unmask.refuse"
    UNMASK_EXECUTE = "unmask.execute"
    UNMASK_EXPIRE = "unmask.expire"
    UNMASK_FETCH = "unmask.fetch"
    VAULT_REVOKE = "vault.revoke"


@dataclass(frozen=True)
class ActionRecord:
    """One action, validated on creation. `details` holds JSON values only: str, int, bool, None, lists, objects."""

    at: float  # UTC seconds; kept to the microsecond in the canonical form
    actor: str  # user name, or "system"
    role: str  # the actor's role then, or "system"
    kind: str
    camera: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.at) or self.at < 0:
            raise ValueError(f"action time must be finite seconds since the epoch, got {self.at!r}")
        if not _ACTOR.fullmatch(self.actor):
            raise ValueError(f"invalid actor {self.actor[:80]!r}")
        if self.role != SYSTEM and self.role not in tuple(Role):
            raise ValueError(f"invalid role {self.role!r}")
        if len(self.kind) > _MAX_LENGTH or not _KIND.fullmatch(self.kind):
            raise ValueError(f"invalid action kind {self.kind[:80]!r}: use lowercase dotted words")
        if self.camera is not None and not _ACTOR.fullmatch(self.camera):
            raise ValueError(f"invalid camera name {self.camera[:80]!r}")
        _check_json(self.details, "details", 0)
        # A private deep copy, so that the caller changing its dict cannot change the record.
        object.__setattr__(self, "details", json.loads(json.dumps(self.details)))
        object.__setattr__(self, "kind", str(self.kind))  # an ActionKind becomes its plain text

    def canonical(self) -> dict[str, Any]:
        """The record as the JSON object that is hashed (version 1)."""
        return {
            "v": CANONICAL_VERSION,
            "at_us": round(self.at * 1_000_000),
            "actor": self.actor,
            "role": self.role,
            "kind": self.kind,
            "camera": self.camera,
            "details": dict(self.details),
        }

    def to_canonical_json(self) -> bytes:
        """Stable bytes of this record: sorted keys, no whitespace, UTF-8, version 1."""
        return _canonical_bytes(self.canonical())


def _canonical_bytes(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _check_json(value: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested too deep (at most {_MAX_DEPTH} levels)")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise ValueError(f"{where}: integer beyond ±2**53-1")
        return
    if isinstance(value, str):
        if len(value) > _MAX_STRING:
            raise ValueError(f"{where}: string longer than {_MAX_STRING} characters")
        return
    if isinstance(value, float):
        raise ValueError(f"{where}: floats are not allowed in canonical records (use int or str)")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            if _FORBIDDEN_KEY.search(key):
                raise ValueError(f"{where}.{key}: secrets and pictures never go into the action log")
            _check_json(item, f"{where}.{key}", depth + 1)
        return
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


class ActionLog:
    """Appends action records — to the tamper-evident log first, when there is one — and reads the latest."""

    def __init__(self, db: Database, append: Callable[[bytes], int] | None = None) -> None:
        # `append` puts the canonical bytes into the Merkle log and returns the leaf index; it
        # raises when it cannot, and then the action is not recorded here either (the caller
        # refuses the action).
        self._db = db
        self._append = append

    def record(self, action: ActionRecord) -> int:
        """Store one action (log leaf first); its id (ids grow in the order actions were recorded)."""
        return self.record_logged(action)[0]

    def record_logged(self, action: ActionRecord) -> tuple[int, int | None]:
        """Store one action (log leaf first); its id and its index in the tamper-evident log."""
        log_index = self._append(action.to_canonical_json()) if self._append is not None else None
        row = ActionRow(
            at=action.at,
            actor=action.actor,
            role=action.role,
            kind=action.kind,
            camera=action.camera,
            details=_canonical_bytes(dict(action.details)).decode("utf-8"),
            log_index=log_index,
        )

        def insert(session: Session) -> int:
            session.add(row)
            session.flush()
            return row.id

        return self._db.write(insert), log_index

    def latest(self, kind: str) -> ActionRecord | None:
        """The newest action of one kind, if any."""
        statement = select(ActionRow).where(ActionRow.kind == kind).order_by(ActionRow.id.desc()).limit(1)
        return self._db.read(lambda session: next((_record(row) for row in session.scalars(statement)), None))

    def recent(
        self, limit: int = 100, camera: str | None = None, kinds: Sequence[str] | None = None
    ) -> list[ActionRecord]:
        """The latest `limit` actions, newest first, of one camera or of all, of some kinds or of all."""
        statement = select(ActionRow).order_by(ActionRow.id.desc()).limit(max(0, limit))
        if camera is not None:
            statement = statement.where(ActionRow.camera == camera)
        if kinds is not None:
            statement = statement.where(ActionRow.kind.in_(list(kinds)))

        def fetch(session: Session) -> list[ActionRecord]:
            return [_record(row) for row in session.scalars(statement)]

        return self._db.read(fetch)


def _record(row: ActionRow) -> ActionRecord:
    return ActionRecord(
        at=row.at, actor=row.actor, role=row.role, kind=row.kind, camera=row.camera, details=json.loads(row.details)
    )
