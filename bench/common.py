"""Shared by the benchmark scripts: where things are, how to find a console script, veil_check's measure."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

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


def detail_survival(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], h: float) -> float:
    """veil_check.py's measure: correlation of the high-pass detail (minus a Gaussian blur, sigma h/16) of a and b."""
    sigma = max(1.0, h / 16.0)

    def highpass(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        im = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        return x - np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float64)

    ha, hb = highpass(a), highpass(b)
    ha -= ha.mean()
    hb -= hb.mean()
    den = float(np.sqrt((ha * ha).sum() * (hb * hb).sum()))
    return float((ha * hb).sum() / den) if den > 1e-9 else 0.0
