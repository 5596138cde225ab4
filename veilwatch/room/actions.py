"""The one way an action is recorded: `ActionRecorder`, which takes only `ActionKind`s.

Every action goes into the tamper-evident log before it is stored, served or takes effect: the
recorder raises when the log cannot take it, and then the caller does not act. Visitors (and
names typed into a failed login) appear in the public log by pseudonym, staff by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from veilwatch.access import Role
from veilwatch.audit.pseudonyms import Pseudonyms
from veilwatch.errors import StorageError
from veilwatch.storage.actions import SYSTEM, ActionKind, ActionLog, ActionRecord
from veilwatch.storage.users import UserStore

__all__ = ["SYSTEM", "ActionRecorder", "PublicNames"]


class PublicNames:
    """Users as the public log names them: staff as themselves, visitors (and unknown names) by pseudonym."""

    USER_KEYS = ("previous", "user", "account", "holder")  # detail fields that name a user
    ATTEMPT_KEY = "attempt"  # the name typed into a failed login: anyone's guess, its own pseudonym domain

    def __init__(self, pseudonyms: Pseudonyms, users: UserStore) -> None:
        self._pseudonyms = pseudonyms
        self._users = users

    def actor(self, name: str, role: str) -> str:
        """The actor field for a user of this role."""
        return self._pseudonyms.public(name, role)

    def details(self, details: Mapping[str, object]) -> dict[str, object]:
        """Details with every user name in them made public-safe (looked up: staff stay named)."""
        out = dict(details)
        for key in self.USER_KEYS:
            value = out.get(key)
            if isinstance(value, str) and value:
                user = self._users.by_name(value)
                out[key] = self._pseudonyms.public(value, str(user.role) if user else Role.VISITOR)
        attempt = out.get(self.ATTEMPT_KEY)
        if isinstance(attempt, str):
            out[self.ATTEMPT_KEY] = self._pseudonyms.attempted(attempt)
        return out


class ActionRecorder:
    """Records actions (log leaf first, then the action table); the only writer of either."""

    def __init__(self, actions: ActionLog, names: PublicNames, clock: Callable[[], float] = time.time) -> None:
        self._actions = actions
        self._names = names
        self._clock = clock

    @property
    def names(self) -> PublicNames:
        """How users appear in the public log."""
        return self._names

    def record(self, kind: ActionKind, actor: str, role: str, camera: str | None = None, **details: object) -> int:
        """Record one action of a user (or of the system) now; its index in the tamper-evident log."""
        return self.record_at(self._clock(), kind, actor, role, camera, details)

    def record_at(
        self, at: float, kind: ActionKind, actor: str, role: str, camera: str | None, details: Mapping[str, object]
    ) -> int:
        """Record one action that happened at `at` (UTC seconds), e.g. a control change; its log index."""
        shown = self._names.actor(actor, role)
        return self._write(ActionRecord(at, shown, role, kind, camera, self._names.details(details)))

    def record_public(self, kind: ActionKind, camera: str | None = None, **details: object) -> int:
        """Record an action veilwatch takes by itself; `details` must already be public-safe (no user names)."""
        return self._write(ActionRecord(self._clock(), SYSTEM, SYSTEM, kind, camera, details))

    def person(self, name: str, role: str) -> str:
        """A user as the public log shows people of `role` (for details written with `record_public`)."""
        return self._names.actor(name, role)

    def _write(self, record: ActionRecord) -> int:
        _, index = self._actions.record_logged(record)
        if index is None:  # the recorder is always built over a log; this keeps the type honest
            raise StorageError("an action was stored without a log entry")
        return index
