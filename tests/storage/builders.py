"""Builders for the storage tests: a hand-moved clock and cheap, real pictures."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def frame(index: int, width: int = 64, height: int = 48) -> Pixels:
    """A cheap-to-encode test picture that changes with `index`."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :] + np.float32(index * 7)
    grey = np.broadcast_to(ramp % 256, (height, width)).astype(np.uint8)
    return np.ascontiguousarray(np.stack([grey, grey[:, ::-1], np.full_like(grey, index % 256)], axis=2))


def noise(seed: int, width: int = 160, height: int = 120) -> Pixels:
    """Incompressible pixels, to fill a disk quickly."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
