"""Hard cuts between shots: after one, no face box of the old shot means anything in the new one.

A cut changes both the pixels and their distribution; a fast pan changes the pixels but keeps
the distribution. So a frame is a cut only when both its mean grey difference from the previous
frame and the L1 distance between their grey histograms are large. (On the shared clips, the
three real cuts score ≥ 27 and ≥ 0.38; every other frame ≤ 14 and ≤ 0.13.) A missed cut costs a
little over-veiling; a false one ends hold-over veils early, so both thresholds sit high.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

THUMB_SIZE = (64, 36)  # frames are compared as tiny grey thumbnails
CUT_MEAN_DIFF = 20.0  # mean absolute grey difference (0..255)
CUT_HISTOGRAM_L1 = 0.25  # L1 distance of 16-bin grey histograms (0..2)
HISTOGRAM_BINS = 16


class CutDetector:
    """Tells whether a frame starts a new shot, comparing it with the previous frame."""

    def __init__(self) -> None:
        self._previous: tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]] | None = None

    def is_cut(self, frame: npt.NDArray[np.uint8]) -> bool:
        """True when this frame differs from the previous one as a new shot does."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        histogram = np.histogram(thumb, bins=HISTOGRAM_BINS, range=(0, 256))[0] / thumb.size
        previous, self._previous = self._previous, (thumb, histogram)
        if previous is None:
            return False
        mean_diff = float(np.abs(thumb - previous[0]).mean())
        histogram_l1 = float(np.abs(histogram - previous[1]).sum())
        return mean_diff > CUT_MEAN_DIFF and histogram_l1 > CUT_HISTOGRAM_L1
