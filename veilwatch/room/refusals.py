"""A tally of refused anonymous requests: at most one log leaf per client and period, the rest counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RefusalTally"]


@dataclass
class _Client:
    since: float
    pending: int = 0


@dataclass
class RefusalTally:
    """At most one log leaf per client and period for refusals of anonymous requests; the rest are counted.

    Anyone can send requests that are refused; a leaf for each would let anyone grow the permanent
    log without bound. The first refusal of a period is logged with the count of those left out
    since the client's last leaf, and `unlogged` counts them all (exported as a metric).
    """

    period_s: float = 60.0
    max_clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    unlogged: int = 0
    _clients: dict[str, _Client] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, client: str) -> int | None:
        """None: count this refusal only; else log it now, with this many refusals left out before it."""
        now = self.clock()
        with self._lock:
            seen = self._clients.get(client)
            if seen is not None and now - seen.since < self.period_s:
                seen.pending += 1
                self.unlogged += 1
                return None
            if len(self._clients) >= self.max_clients:
                self._forget_quiet(now)
            self._clients[client] = _Client(now)
            return seen.pending if seen is not None else 0

    def _forget_quiet(self, now: float) -> None:
        """Drop clients whose period is over (their left-out refusals stay in `unlogged`)."""
        for name in [name for name, seen in self._clients.items() if now - seen.since >= self.period_s]:
            del self._clients[name]
        if len(self._clients) >= self.max_clients:  # a flood of addresses inside one period: start afresh
            self._clients.clear()
