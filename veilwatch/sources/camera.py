"""Camera sources: frames from live streams, looped files, capture devices or a synthetic scene.

A source is an iterator factory, `frames(stop) -> Iterator[CapturedFrame]`, that never gives up
by itself: a live stream that drops, ends or stalls is reopened with exponential backoff (1, 2,
4 … `max_backoff_s` seconds), a file is looped and paced at its own frame rate, and the reason of
the latest failure is kept in `last_error` with credentials scrubbed. Every network open and read
has a timeout (`av.open(..., timeout=(open_s, read_s))`), so a silent camera shows up as
`stalled` within seconds instead of hanging a thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from veilwatch.frames import Frame, Image
from veilwatch.sources.base import CapturedFrame, Source, SourceState, SourceStatus
from veilwatch.sources.demo import DemoSource
from veilwatch.sources.urls import SourceSpec, scrub, validate_source

__all__ = ["AVSource", "CapturedFrame", "DemoSource", "Source", "SourceState", "open_source"]

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 1.0
CATCH_UP_S = 1.0  # a paced file that falls this far behind its clock restarts its clock instead of racing


class _Pacer:
    """Releases file frames at their presentation times, continuing seamlessly across loops."""

    def __init__(self) -> None:
        self._origin: float | None = None  # monotonic time of presentation time 0 in this loop
        self._last_target: float | None = None
        self._step = 0.04

    def new_loop(self, step_s: float) -> None:
        """The file starts again: its first frame follows the last one after one frame's time."""
        self._origin = None
        self._step = step_s

    def wait(self, at_s: float, stop: threading.Event) -> bool:
        """Sleep until the frame at `at_s` is due; False if stopped meanwhile."""
        now = time.monotonic()
        if self._origin is None:
            first = self._last_target + self._step if self._last_target is not None else now
            self._origin = first - at_s
        target = self._origin + at_s
        if target < now - CATCH_UP_S:
            self._origin, target = now - at_s, now
        self._last_target = target
        return target <= now or not stop.wait(target - now)


class AVSource:
    """A camera stream, video file or capture device read with PyAV, reopened whenever it fails."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        fps_hint: float | None = None,
    ) -> None:
        if spec.kind == "demo":
            raise ValueError("demo sources are DemoSource, not AVSource")
        self.spec = spec
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._max_backoff = max(INITIAL_BACKOFF_S, max_backoff_s)
        self._fps_hint = fps_hint
        self._rate: float | None = None
        self._status = SourceStatus()

    @property
    def display(self) -> str:
        """The source, credentials masked."""
        return self.spec.display

    @property
    def state(self) -> SourceState:
        """The current state."""
        return self._status.state

    @property
    def last_error(self) -> str | None:
        """The latest failure (credentials masked)."""
        return self._status.last_error

    @property
    def fps(self) -> float | None:
        """The stream's frame rate once known, else the hint."""
        return self._rate or self._fps_hint

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        """Frames until `stop` is set, reopening (live) or looping (files) as needed."""
        numbers = itertools.count()
        pacer = _Pacer() if self.spec.kind == "file" else None
        backoff = INITIAL_BACKOFF_S
        self._status.set(SourceState.CONNECTING)
        try:
            while not stop.is_set():
                delivered = False
                try:
                    for captured in self._session(stop, numbers, pacer):
                        delivered = True
                        yield captured
                    if stop.is_set():
                        break
                    if delivered and self.spec.kind == "file":
                        continue  # loop the file at once
                    stalled, error = False, "the stream ended"
                except Exception as exc:  # any failure of a source means: reopen it later
                    stalled, error = _describe(exc)
                if delivered:
                    backoff = INITIAL_BACKOFF_S
                self._status.set(SourceState.STALLED if stalled else SourceState.RECONNECTING, error)
                log.warning("camera source %s: %s; reopening in %.0f s", self.display, error, backoff)
                if stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self._max_backoff)
        finally:
            self._status.set(SourceState.OFFLINE)

    def _session(self, stop: threading.Event, numbers: Iterator[int], pacer: _Pacer | None) -> Iterator[CapturedFrame]:
        """One open container, decoded until it ends or fails."""
        import av

        container: Any = av.open(
            self.spec.url, format=self.spec.format, options=self.spec.av_options(), timeout=self._timeouts
        )
        try:
            if not container.streams.video:
                raise ValueError("the source has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self._rate = float(rate) if rate else None
            step = 1.0 / (self.fps or 25.0)
            if pacer is not None:
                pacer.new_loop(step)
            for index, decoded in enumerate(container.decode(stream)):
                if stop.is_set():
                    return
                if pacer is not None and not pacer.wait(_seconds(decoded, index, step), stop):
                    return
                pixels = _upright(decoded)
                seq = next(numbers)
                frame = Frame(seq, pixels, decoded.pts, decoded.time_base)
                self._status.set(SourceState.LIVE)
                yield CapturedFrame(frame, time.monotonic(), seq)
        finally:
            container.close()


def _seconds(decoded: Any, index: int, step: float) -> float:
    if decoded.pts is not None and decoded.time_base:
        return float(decoded.pts * decoded.time_base)
    return index * step


def _upright(decoded: Any) -> Image:
    pixels: Image = np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8)
    steps = round((decoded.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, steps)) if steps else pixels


def _describe(exc: Exception) -> tuple[bool, str]:
    """Whether a failure was a timeout, and a one-line scrubbed reason."""
    import av

    stalled = isinstance(exc, av.error.ExitError)  # PyAV's timeout interrupts FFmpeg with AVERROR_EXIT
    if stalled:
        return True, "no data within the timeout (stalled)"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return False, scrub(" ".join(str(text).split()))[:300]


def open_source(
    source: str | SourceSpec,
    *,
    base_dir: Path | None = None,
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 5.0,
    max_backoff_s: float = 30.0,
    fps_hint: float | None = None,
) -> Source:
    """The source for a camera's configured source text (validated) or spec."""
    spec = source if isinstance(source, SourceSpec) else validate_source(source, base_dir=base_dir)
    if spec.kind == "demo":
        return DemoSource.from_spec(spec)
    return AVSource(
        spec,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        max_backoff_s=max_backoff_s,
        fps_hint=fps_hint,
    )
