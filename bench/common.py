"""Shared by the benchmark scripts: where things are and how to find a console script."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def executable(name: str) -> str:
    """The console script `name` of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"cannot find the `{name}` command")
    return found
