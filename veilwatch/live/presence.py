"""Who is watching each camera: staff by name (the watched may know their watchers), visitors by count."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

STAFF_ROLES = frozenset({"operator", "auditor", "admin"})
ROLES = STAFF_ROLES | {"visitor"}


@dataclass(frozen=True)
class Watchers:
    """The watchers of one camera: staff names (sorted, each once) and how many visitors."""

    staff: tuple[str, ...]
    visitors: int


@dataclass(frozen=True)
class _Seat:
    camera: str
    user: str
    role: str


class Presence:
    """The open views of every camera; one token per open view (a browser tab, a stream)."""

    def __init__(self) -> None:
        self._views: dict[str, _Seat] = {}
        self._lock = threading.Lock()

    def join(self, camera: str, user_name: str, role: str) -> str:
        """Record that this user opened a view of the camera; returns the token to leave with."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._views[token] = _Seat(camera, user_name, role)
        return token

    def leave(self, token: str) -> None:
        """Record that a view was closed (idempotent)."""
        with self._lock:
            self._views.pop(token, None)

    def watchers(self, camera: str) -> Watchers:
        """Who watches the camera: staff names, and the number of distinct visitors."""
        with self._lock:
            seats = [seat for seat in self._views.values() if seat.camera == camera]
        staff = sorted({seat.user for seat in seats if seat.role in STAFF_ROLES})
        visitors = len({seat.user for seat in seats if seat.role not in STAFF_ROLES})
        return Watchers(tuple(staff), visitors)
