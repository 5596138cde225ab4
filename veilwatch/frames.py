"""Frames: the unit that flows source → detect → track → veil → sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from veilwatch.boxes import Detections

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Frame:
    """One decoded picture, upright, as RGB uint8 (H × W × 3), with its timing if it has one."""

    index: int
    pixels: Image
    pts: int | None = None
    time_base: Fraction | None = None
    duration: int | None = None  # in time_base units, when the source says

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 3 or self.pixels.dtype != np.uint8:
            raise ValueError(f"Frame pixels must be H×W×3 uint8 RGB, got shape {self.pixels.shape} {self.pixels.dtype}")

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def seconds(self) -> float | None:
        """Presentation time in seconds, if known."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class VeiledFrame:
    """A frame whose faces are veiled, with what was found and what was veiled."""

    frame: Frame
    detections: Detections
    held: Detections = field(default_factory=Detections)

    @property
    def veiled_boxes(self) -> npt.NDArray[np.float32]:
        """Every face box veiled in this frame (detected and held over), before growing."""
        return np.concatenate([self.detections.boxes, self.held.boxes])


@dataclass(frozen=True)
class RawRegion:
    """The unveiled pixels under one veil, at (x0, y0) of its frame: only ever sealed, never shown or stored clear."""

    x0: int
    y0: int
    pixels: Image

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])
