"""Who is watching each camera: staff by name (the watched may know their watchers), visitors by count."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from veilwatch.access import Role, is_staff


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
        if role not in tuple(Role):
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(Role)}")
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
        staff = sorted({seat.user for seat in seats if is_staff(seat.role)})
        visitors = len({seat.user for seat in seats if not is_staff(seat.role)})
        return Watchers(tuple(staff), visitors)
