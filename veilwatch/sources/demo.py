"""A synthetic camera: faces (the public-domain NASA astronaut) walking across a scene, in real time.

Every frame is a pure function of (seed, frame index), and `ground_truth(index)` gives the face
boxes in it, so tests and `bench/live` can prove that no face ever leaves the pipeline unveiled.
Walkers keep to their own horizontal lanes and stay fully inside the frame, so no face is ever
hidden or cut and every ground-truth box is fully visible. They cross at 1.5–5 face heights per
second — a stroll to a brisk walk (a person walking across the view covers about 6 face heights a
second) — so small, distant faces move few pixels per frame and large, near ones many, as in a
real scene.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from veilwatch.frames import Frame, Image
from veilwatch.media.samples import astronaut_head, scene
from veilwatch.sources.base import CapturedFrame, SourceState, SourceStatus
from veilwatch.sources.urls import SourceSpec

# The face inside astronaut_head() (170 × 200 px) as CenterFace draws it: x0, y0, x1, y1.
HEAD_FACE = (25.0, 24.0, 125.0, 150.0)
HEAD_SIZE = (170, 200)
MIN_FACE_PX = 24.0
MAX_FACE_PX = 190.0
LANE_FILL = 0.9  # a sprite is at most this share of its lane's height
MARGIN_PX = 8
SWAY_PX = 6.0
SPEED_FACES_PER_S = (1.5, 5.0)  # walking speed, in face heights per second

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Walker:
    sprite: Image
    lane_y: float  # top of the sprite when not swaying
    period: int  # frames to walk across and back
    phase: float  # 0..1
    sway: float  # vertical amplitude (px)


class DemoSource:
    """Synthetic live camera: `people` astronaut faces of various sizes walking across a scene."""

    def __init__(self, seed: int = 0, people: int = 6, width: int = 1280, height: int = 720, fps: float = 10) -> None:
        if people < 1 or width < 64 or height < 64 or fps <= 0:
            raise ValueError(f"demo source needs people ≥ 1, a frame of at least 64×64 and fps > 0, got {people}")
        self.seed, self.people, self.width, self.height = seed, people, width, height
        self._fps = float(fps)
        self._backdrop = scene(width, height)
        self._walkers = self._cast(np.random.default_rng(seed), astronaut_head())
        self._status = SourceStatus()

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> DemoSource:
        """The demo source a validated `demo:walkers?...` spec describes."""
        o = spec.options
        return cls(int(o["seed"]), int(o["people"]), int(o["width"]), int(o["height"]), float(o["fps"]))

    def _cast(self, rng: np.random.Generator, head: Image) -> list[_Walker]:
        lane = self.height / self.people
        face_share = (HEAD_FACE[3] - HEAD_FACE[1]) / HEAD_SIZE[1]
        largest = min(MAX_FACE_PX, lane * LANE_FILL * face_share, (self.width - 2 * MARGIN_PX) * 0.5 * face_share)
        smallest = min(MIN_FACE_PX, largest)
        walkers = []
        for i, lane_index in enumerate(rng.permutation(self.people)):
            face = math.exp(rng.uniform(math.log(smallest), math.log(largest))) if largest > smallest else smallest
            sprite_h = max(8, round(face / face_share))
            sprite_w = max(8, round(sprite_h * HEAD_SIZE[0] / HEAD_SIZE[1]))
            interpolation = cv2.INTER_AREA if sprite_h < HEAD_SIZE[1] else cv2.INTER_LINEAR
            sprite = np.asarray(cv2.resize(head, (sprite_w, sprite_h), interpolation=interpolation), np.uint8)
            free = lane - sprite_h
            path = 2 * max(1, self.width - sprite_w - 2 * MARGIN_PX)  # across and back, px
            speed = rng.uniform(*SPEED_FACES_PER_S) * face  # px per second
            walkers.append(
                _Walker(
                    sprite=sprite,
                    lane_y=lane_index * lane + max(0.0, free) / 2,
                    period=max(2, round(path / speed * self._fps)),
                    phase=(i / self.people + rng.uniform(0, 0.2)) % 1.0,
                    sway=min(SWAY_PX, max(0.0, free / 2 - 1)),
                )
            )
        return walkers

    def _position(self, walker: _Walker, index: int) -> tuple[int, int]:
        """Top-left corner of a walker's sprite in frame `index`: across and back, swaying a little."""
        h, w = walker.sprite.shape[:2]
        t = (index / walker.period + walker.phase) % 1.0
        across = 2 * t if t < 0.5 else 2 - 2 * t
        x = MARGIN_PX + across * max(0, self.width - w - 2 * MARGIN_PX)
        y = walker.lane_y + walker.sway * math.sin(2 * math.pi * 3 * t)
        return round(x), round(min(max(y, 0), self.height - h))

    def frame(self, index: int) -> Image:
        """The pixels of frame `index` (RGB)."""
        pixels = self._backdrop.copy()
        for walker in self._walkers:
            x, y = self._position(walker, index)
            h, w = walker.sprite.shape[:2]
            pixels[y : y + h, x : x + w] = walker.sprite
        return pixels

    def ground_truth(self, index: int) -> list[Box]:
        """The face boxes (x0, y0, x1, y1) in frame `index`."""
        boxes = []
        for walker in self._walkers:
            x, y = self._position(walker, index)
            s = walker.sprite.shape[0] / HEAD_SIZE[1]
            x0, y0, x1, y1 = HEAD_FACE
            boxes.append((round(x + x0 * s), round(y + y0 * s), round(x + x1 * s), round(y + y1 * s)))
        return boxes

    @property
    def display(self) -> str:
        """What the source is."""
        return f"demo:walkers?seed={self.seed}&people={self.people}"

    @property
    def state(self) -> SourceState:
        """Live while frames are being produced, else offline."""
        return self._status.state

    @property
    def last_error(self) -> str | None:
        """Always None: the demo cannot fail."""
        return self._status.last_error

    @property
    def fps(self) -> float:
        """The frame rate it produces."""
        return self._fps

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        """Frames in real time until `stop` is set; like a camera, it skips frames rather than fall behind."""
        start = time.monotonic()
        index = 0
        self._status.set(SourceState.LIVE)
        try:
            while True:
                due = start + index / self._fps
                if stop.wait(max(0.0, due - time.monotonic())):
                    return
                pixels = self.frame(index)
                yield CapturedFrame(Frame(index, pixels), time.monotonic(), index)
                index = max(index + 1, math.floor((time.monotonic() - start) * self._fps))
        finally:
            self._status.set(SourceState.OFFLINE)
