"""Turn-taking: who may steer a camera now, who waits, and a record of every change.

One person steers a camera at a time, for at most `lease_s` seconds; others queue and get the
lease in turn when it is released or runs out. Operators and admins may take over at once; the
person they displace goes back to the front of the queue. Expiry is handled lazily on every call
(no timer thread), against an injectable clock.

Every change is an action of someone and is reported as a `ControlEvent` to the `on_event`
callback (the server stores them). Changes are computed on a copy and committed only after
their events were accepted: if recording an event raises, the change does not happen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from veilwatch.access import is_staff, may_take_over

MAX_QUEUE = 100  # people waiting per camera; beyond this a request is refused


@dataclass(frozen=True)
class ControlEvent:
    """One change of control: kind (granted, queued, released, left, expired, takeover, refused), by whom, when.

    `at` is wall-clock time (seconds since the epoch), for the record.
    """

    kind: str
    actor: str
    role: str
    camera: str
    at: float
    details: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


@dataclass(frozen=True)
class ControlState:
    """Who steers a camera, until when (in the desk's clock), and who waits, in order."""

    holder: str | None
    expires_at: float | None
    remaining_s: float
    queue: tuple[str, ...]
    staff: frozenset[str] = frozenset()  # which of the names above are staff (others may be shown only to staff)


@dataclass(frozen=True)
class _Seat:
    holder: str | None = None
    holder_role: str = ""
    expires_at: float | None = None
    queue: tuple[tuple[str, str], ...] = ()  # (user, role), first in line first

    def waiting(self, user: str) -> bool:
        """Whether the user is in the queue."""
        return any(name == user for name, _ in self.queue)

    def without(self, user: str) -> tuple[tuple[str, str], ...]:
        """The queue without this user."""
        return tuple(entry for entry in self.queue if entry[0] != user)


class ControlDesk:
    """Leases of camera control, one holder per camera, with a queue and staff takeover."""

    def __init__(
        self,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[ControlEvent], None] | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        self.lease_s = lease_s
        self._clock = clock
        self._wall = wall_clock
        self._on_event = on_event
        self._max_queue = max_queue
        self._seats: dict[str, _Seat] = {}
        self._lock = threading.Lock()

    def request(self, camera: str, user: str, role: str) -> ControlState:
        """Ask to steer: get the lease if it is free, else join the end of the queue."""
        with self._lock:
            seat, events = self._expired(camera)
            if seat.holder == user or seat.waiting(user):
                pass
            elif seat.holder is None:
                seat = self._grant(seat, user, role, self._clock(), events, camera)
            elif len(seat.queue) >= self._max_queue:
                events.append(self._event("refused", user, role, camera, reason="queue full"))
            else:
                seat = replace(seat, queue=(*seat.queue, (user, role)))
                events.append(self._event("queued", user, role, camera, position=str(len(seat.queue))))
            return self._commit(camera, seat, events)

    def release(self, camera: str, user: str, role: str) -> ControlState:
        """Give up the lease (the next in line gets it) or leave the queue."""
        with self._lock:
            seat, events = self._expired(camera)
            if seat.holder == user:
                events.append(self._event("released", user, role, camera))
                seat = self._next(replace(seat, holder=None, holder_role="", expires_at=None), events, camera)
            elif seat.waiting(user):
                seat = replace(seat, queue=seat.without(user))
                events.append(self._event("left", user, role, camera))
            return self._commit(camera, seat, events)

    def takeover(self, camera: str, staff_user: str, role: str) -> ControlState:
        """Staff (operator, admin) take the lease at once; the displaced holder goes to the front of the queue."""
        if not may_take_over(role):
            raise PermissionError(f"{role!r} may not take over a camera; only operators and admins may")
        with self._lock:
            seat, events = self._expired(camera)
            if seat.holder == staff_user:
                return self._commit(camera, seat, events)
            queue = seat.without(staff_user)
            previous = seat.holder
            if previous is not None:
                queue = ((previous, seat.holder_role), *queue)
            now = self._clock()
            events.append(self._event("takeover", staff_user, role, camera, previous=previous or ""))
            seat = _Seat(staff_user, role, now + self.lease_s, queue)
            return self._commit(camera, seat, events)

    def holder(self, camera: str) -> str | None:
        """Who steers the camera now, if anyone."""
        return self.state(camera).holder

    def may_steer(self, camera: str, user: str) -> bool:
        """Whether this user holds the camera's lease now."""
        return self.state(camera).holder == user

    def state(self, camera: str) -> ControlState:
        """The camera's lease and queue now."""
        with self._lock:
            seat, events = self._expired(camera)
            return self._commit(camera, seat, events)

    # --- internals: all called with the lock held -------------------------------------------------

    def _expired(self, camera: str) -> tuple[_Seat, list[ControlEvent]]:
        """The seat with every lease that has run out passed on, oldest first, and the events of it."""
        seat = self._seats.get(camera, _Seat())
        events: list[ControlEvent] = []
        now = self._clock()
        while seat.holder is not None and seat.expires_at is not None and now >= seat.expires_at:
            ended = seat.expires_at
            events.append(self._event("expired", seat.holder, seat.holder_role, camera))
            seat = self._next(replace(seat, holder=None, holder_role="", expires_at=None), events, camera, ended)
        return seat, events

    def _next(self, seat: _Seat, events: list[ControlEvent], camera: str, start: float | None = None) -> _Seat:
        """The first in line gets the free lease (starting at `start`: when the previous one ran out)."""
        if not seat.queue:
            return seat
        (user, role), rest = seat.queue[0], seat.queue[1:]
        begun = start if start is not None else self._clock()
        return self._grant(replace(seat, queue=rest), user, role, begun, events, camera)

    def _grant(self, seat: _Seat, user: str, role: str, start: float, events: list[ControlEvent], camera: str) -> _Seat:
        expires = start + self.lease_s
        events.append(self._event("granted", user, role, camera, lease_s=f"{self.lease_s:g}"))
        return replace(seat, holder=user, holder_role=role, expires_at=expires, queue=seat.without(user))

    def _commit(self, camera: str, seat: _Seat, events: list[ControlEvent]) -> ControlState:
        if self._on_event is not None:
            for event in events:
                self._on_event(event)  # raising here leaves the desk as it was: unrecorded, undone
        self._seats[camera] = seat
        remaining = max(0.0, seat.expires_at - self._clock()) if seat.expires_at is not None else 0.0
        seated = ((seat.holder, seat.holder_role), *seat.queue)
        staff = frozenset(name for name, role in seated if name and is_staff(role))
        return ControlState(seat.holder, seat.expires_at, remaining, tuple(name for name, _ in seat.queue), staff)

    def _event(self, kind: str, actor: str, role: str, camera: str, **details: str) -> ControlEvent:
        return ControlEvent(kind, actor, role, camera, self._wall(), details)
