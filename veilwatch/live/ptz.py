"""Digital pan, tilt and zoom: which part of the full-resolution source frame a camera shows.

The crop is cut from the full-resolution frame, resized to the camera's output size, and only
then veiled like any other frame (detection runs on the output picture). Zooming therefore
never shows pixels the detector has not searched at the size they are shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from veilwatch.frames import Image

MIN_ZOOM = 1.0
MAX_ZOOM = 8.0


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


@dataclass(frozen=True)
class PTZView:
    """A view: zoom 1..8, pan -1 (left edge) .. 1 (right edge), tilt -1 (top edge) .. 1 (bottom edge)."""

    zoom: float = 1.0
    pan: float = 0.0
    tilt: float = 0.0

    def __post_init__(self) -> None:
        values = (self.zoom, self.pan, self.tilt)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"PTZ view needs finite numbers, got zoom={self.zoom} pan={self.pan} tilt={self.tilt}")
        if not (MIN_ZOOM <= self.zoom <= MAX_ZOOM and -1 <= self.pan <= 1 and -1 <= self.tilt <= 1):
            raise ValueError(
                f"PTZ view out of range: zoom {self.zoom} (1..8), pan {self.pan} (-1..1), tilt {self.tilt} (-1..1)"
            )

    def moved(self, dpan: float = 0.0, dtilt: float = 0.0, dzoom: float = 0.0) -> PTZView:
        """This view shifted by the given steps, each clamped to its range."""
        return PTZView(
            zoom=_clamp(self.zoom + dzoom, MIN_ZOOM, MAX_ZOOM),
            pan=_clamp(self.pan + dpan, -1.0, 1.0),
            tilt=_clamp(self.tilt + dtilt, -1.0, 1.0),
        )

    def crop(self, width: int, height: int, aspect: float | None = None) -> tuple[int, int, int, int]:
        """The region (x0, y0, x1, y1) of a width × height frame this view shows, of the output's aspect.

        At zoom 1 it is the largest region of that aspect (width / height of the output, default the
        frame's own); pan and tilt move it within the frame, never beyond.
        """
        if width < 1 or height < 1:
            raise ValueError(f"cannot crop a {width}×{height} frame")
        ratio = aspect if aspect is not None and aspect > 0 else width / height
        full_w, full_h = (height * ratio, float(height)) if width / height > ratio else (float(width), width / ratio)
        crop_w = max(1, min(width, round(full_w / self.zoom)))
        crop_h = max(1, min(height, round(full_h / self.zoom)))
        x0 = round((width - crop_w) * (self.pan + 1) / 2)
        y0 = round((height - crop_h) * (self.tilt + 1) / 2)
        return x0, y0, x0 + crop_w, y0 + crop_h


def view_pixels(source: Image, view: PTZView, width: int, height: int) -> Image:
    """The view's crop of a full-resolution frame, resized to width × height (not yet veiled)."""
    x0, y0, x1, y1 = view.crop(source.shape[1], source.shape[0], width / height)
    crop = source[y0:y1, x0:x1]
    if crop.shape[1] == width and crop.shape[0] == height:
        return crop
    interpolation = cv2.INTER_AREA if crop.shape[1] > width else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(crop, (width, height), interpolation=interpolation), np.uint8)
