"""What a run is asked to do: one `Task` per file.

Kept apart from `jobs` so that the command line can plan and hand out tasks without loading the
engine (OpenCV, PyAV, the model code): worker processes load it, the parent never needs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

STDIO = "-"

MediaKind = Literal["image", "video"]


@dataclass(frozen=True)
class Task:
    """One file to veil: where it comes from, where the result goes, and what it is."""

    source: str  # a path, or "-" for standard input
    output: str  # a path, or "-" for standard output
    kind: MediaKind
    overwrite: bool = False
