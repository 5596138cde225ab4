"""The one-time set-up token: while no user exists, whoever holds it may create the first administrator."""

from __future__ import annotations

import contextlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterator

from veilwatch.errors import UserError

__all__ = ["SetupClosedError", "SetupToken"]


class SetupClosedError(UserError):
    """Set-up is over (a user exists, or the token was used) or the token given is wrong."""


class SetupToken:
    """A token made at start when there are no users; spent by the first successful set-up."""

    def __init__(self, no_users: Callable[[], bool]) -> None:
        self._no_users = no_users
        self._token = secrets.token_urlsafe(16) if no_users() else None
        self._lock = threading.Lock()  # one first administrator, even if two set-ups race

    @property
    def token(self) -> str | None:
        """The token while set-up is open (printed at start), else None."""
        return self._token if self.is_open() else None

    def is_open(self) -> bool:
        """Whether the first administrator may still be created."""
        return self._token is not None and self._no_users()

    @contextlib.contextmanager
    def claim(self, sent: str) -> Iterator[None]:
        """Hold set-up for one attempt with `sent`; the token is spent if the block finishes without error."""
        with self._lock:
            token = self._token
            if token is None or not self._no_users() or not hmac.compare_digest(sent.encode(), token.encode()):
                raise SetupClosedError("set-up is closed or the token is wrong")
            yield
            self._token = None
