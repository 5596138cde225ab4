"""The one path-confinement check: a file named by a stored row or a request stays inside the data folder."""

from __future__ import annotations

import os
from pathlib import Path

from veilwatch.errors import StorageError

__all__ = ["confined"]


def confined(root: Path, relative: str | Path) -> Path:
    """`root / relative` with links resolved, if it lies strictly inside `root`; else StorageError."""
    base = root.resolve()
    path = (base / relative).resolve()
    # A row or a request can only say otherwise if someone edited the database or probes: never follow it out.
    if not str(relative) or path == base or os.path.commonpath([path, base]) != str(base):
        raise StorageError(f"path outside the data folder: {str(relative)[:200]!r}", path=str(base))
    return path
