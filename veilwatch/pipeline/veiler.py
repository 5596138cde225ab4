"""detect → track → veil, one frame at a time: the core shared by files and live cameras.

A file can afford to look ahead: frames wait `lookback_frames` in a buffer so that a face first
detected in frame t is also veiled in the frames just before t. A live camera uses no look-back
and gets each frame back at once. Nothing leaves `push`/`finish` unveiled: if the detector
raises, the exception propagates and the caller must withhold the frame (fail closed).

`plan`/`plan_rest` stop before the veil: they return `PlannedFrame`s, whose pixels are still raw,
for a caller that veils them (`apply`) on another thread, in order, before they go anywhere else —
a file's pipeline, so that veiling one frame overlaps detecting the next.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol

from veilwatch.boxes import Detections
from veilwatch.frames import Frame, Image, VeiledFrame
from veilwatch.redaction.veils import Veil
from veilwatch.tracking.cuts import CutDetector
from veilwatch.tracking.motion import FrameView, MotionEstimator
from veilwatch.tracking.tracker import FaceTracker


class FaceDetector(Protocol):
    """Anything that finds faces in an RGB image."""

    def detect(self, frame: Image, view: FrameView | None = None) -> Detections:
        """Face boxes in frame pixels (a stream's detector may use the frame's `view`: grey and camera motion)."""
        ...


@dataclass(frozen=True)
class PlannedFrame:
    """A frame whose veils are decided but not applied: its pixels are still raw (never output them)."""

    frame: Frame
    detections: Detections
    held: Detections


class FrameVeiler:
    """Turns frames into veiled frames; stateful across the frames of one stream."""

    def __init__(
        self,
        detector: FaceDetector,
        veil: Veil,
        tracker: FaceTracker | None = None,
        lookback_frames: int = 0,
        restart_every: int | None = None,
    ) -> None:
        """`restart_every`: the camera's motion is measured afresh at frames whose index is a multiple of it.

        (As the scan schedule starts afresh there too: a part of a file veiled on its own from such a
        frame then measures exactly the motion the whole run measures.)
        """
        self._detector = detector
        self._veil = veil
        self._tracker = tracker
        self._lookback = lookback_frames if tracker is not None else 0
        self._pending: deque[tuple[Frame, Detections]] = deque()
        self._cuts = CutDetector()
        self._motion = MotionEstimator() if tracker is not None else None
        self._restart_every = restart_every

    def push(self, frame: Frame) -> list[VeiledFrame]:
        """Take one frame; return the frames now final (none while the look-back fills)."""
        return [self.apply(planned) for planned in self.plan(frame)]

    def finish(self) -> list[VeiledFrame]:
        """Veil and return every frame still waiting for look-ahead (end of stream)."""
        return [self.apply(planned) for planned in self.plan_rest()]

    def plan(self, frame: Frame) -> list[PlannedFrame]:
        """Detect and track one frame; return the frames whose veils are now decided, not yet veiled."""
        if self._tracker is None or self._motion is None:
            found = self._detector.detect(frame.pixels)
        else:
            cut = self._cuts.is_cut(frame.pixels)
            if cut or (self._restart_every and frame.index % self._restart_every == 0):
                self._motion.reset()
            view = self._motion.view(frame.pixels)
            found = self._detector.detect(frame.pixels, view)
            found = self._tracker.update(frame.index, found, new_shot=cut, motion=view.motion)
        self._pending.append((frame, found))
        ready = []
        while len(self._pending) > self._lookback:
            ready.append(self._planned(*self._pending.popleft()))
        return ready

    def plan_rest(self) -> list[PlannedFrame]:
        """The frames still waiting for look-ahead, their veils decided (end of stream)."""
        ready = [self._planned(frame, found) for frame, found in self._pending]
        self._pending.clear()
        return ready

    def apply(self, planned: PlannedFrame) -> VeiledFrame:
        """Veil a planned frame (one thread at a time: the veil's noise is drawn in sequence)."""
        boxes = Detections.concat([planned.detections, planned.held]).boxes
        pixels = self._veil.apply(planned.frame.pixels, boxes)
        return VeiledFrame(replace(planned.frame, pixels=pixels), planned.detections, planned.held)

    def _planned(self, frame: Frame, found: Detections) -> PlannedFrame:
        height, width = frame.pixels.shape[:2]
        held = self._tracker.held_boxes(frame.index, width, height) if self._tracker is not None else Detections()
        return PlannedFrame(frame, found, held)

    @property
    def veil(self) -> Veil:
        """The veil of this stream (its regions are what a frame's veils cover)."""
        return self._veil

    @property
    def detector(self) -> FaceDetector:
        """The detector of this stream."""
        return self._detector

    @property
    def tracker(self) -> FaceTracker | None:
        """The tracker of this stream, if it has one."""
        return self._tracker
