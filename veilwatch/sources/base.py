"""What every camera source delivers, and the states it can be in."""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from veilwatch.frames import Frame


@dataclass(frozen=True)
class CapturedFrame:
    """A frame as it left its source: pixels, when it was received (time.monotonic()), its number."""

    frame: Frame
    captured_at: float
    seq: int


class SourceState(enum.Enum):
    """Where a source stands."""

    CONNECTING = "connecting"  # first open in progress
    LIVE = "live"  # frames are flowing
    RECONNECTING = "reconnecting"  # the stream failed or ended; reopening after a backoff
    STALLED = "stalled"  # the stream went silent past its timeout; reopening after a backoff
    OFFLINE = "offline"  # not running (never started, or stopped)


class Source(Protocol):
    """Anything that delivers captured frames until told to stop."""

    @property
    def display(self) -> str:
        """What the source is, safe to show (credentials masked)."""
        ...

    @property
    def state(self) -> SourceState:
        """The current state."""
        ...

    @property
    def last_error(self) -> str | None:
        """The latest failure, scrubbed; None if there was none."""
        ...

    @property
    def fps(self) -> float | None:
        """The nominal frame rate, when known."""
        ...

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        """Captured frames until `stop` is set."""
        ...


class SourceStatus:
    """State and last error behind one lock (read by the web server, written by the capture thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = SourceState.OFFLINE
        self.last_error: str | None = None

    def set(self, state: SourceState, error: str | None = None) -> None:
        """Change the state, and record the error if one is given."""
        with self._lock:
            self.state = state
            if error is not None:
                self.last_error = error
