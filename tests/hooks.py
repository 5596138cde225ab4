"""Fault injection for tests only: hooks handed to the engine's injection points, never shipped in the package."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CrashOnce:
    """A part-frame hook: the first worker to write `after_frames` frames of part `part` exits at once."""

    marker: str  # created just before the exit, so the retry runs normally
    part: int = 1
    after_frames: int = 3

    def __call__(self, part: int, written: int) -> None:
        """End this process as a killed worker would, once (the marker remembers it happened)."""
        if part != self.part or written != self.after_frames or Path(self.marker).exists():
            return
        Path(self.marker).touch()
        os._exit(1)
