"""The camera's own motion between two frames: a shift and a zoom.

Phones, body cameras and pan-tilt heads move, and then every pixel changes although the scene
did not. Knowing how the picture moved lets the scanner carry what it found along that motion
(searching afresh only what is newly in view or changed beyond it) and lets the tracker move a
held face with the picture instead of inflating its box to cover where it might have gone.

The estimate follows OpenCV's usual recipe: corners (`goodFeaturesToTrack`) on the previous
frame, followed into the current one with pyramidal Lucas–Kanade flow, and a 4-degree-of-freedom
transform fitted to them with RANSAC (`estimateAffinePartial2D`), so people walking across a
still camera are outliers and the camera reads as still. All of it runs on the grey frame shrunk
`SHRINK` times. When too few corners agree the motion is *unknown*, and callers treat every pixel
as changed (a full search): an unreliable estimate must never carry a face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.boxes import FloatArray

Grey = npt.NDArray[np.uint8]
Matrix = npt.NDArray[np.float64]  # 2×3 affine matrix, frame pixels of one frame → the next

MAX_CORNERS = 300
CORNER_QUALITY = 0.01
CORNER_SPACING = 6  # shrunk px between corners
MIN_INLIERS = 24  # fewer agreeing corners than this: the motion is unknown
MIN_INLIER_SHARE = 0.4
RANSAC_SEED = 7
RANSAC_PX = 0.75  # shrunk px: a corner agreeing closer than this is an inlier
# Below these the camera counts as still (the shift of a still camera's estimate is noise, and
# carrying findings along it would only resample them).
STILL_SHIFT_PX = 0.2  # frame px
STILL_SCALE = 1e-3
# A measured motion is believed only if the previous frame moved along it matches the current one
# clearly better than the previous frame as it stands: corners cluster on textured things, and on a
# still camera over a plain background those are the people walking across it, whose motion is not
# the camera's.
BETTER_THAN_STILL = 0.8
KEY_FRAMES = 25  # a key frame serves at most this many frames

IDENTITY: Matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class CameraMotion:
    """How the picture moved: `matrix` maps a point of the earlier frame to the later one, or None if unknown."""

    matrix: Matrix | None

    @staticmethod
    def still() -> CameraMotion:
        """No motion at all."""
        return CameraMotion(IDENTITY.copy())

    @staticmethod
    def unknown() -> CameraMotion:
        """A motion that could not be measured (callers must treat every pixel as changed)."""
        return CameraMotion(None)

    @property
    def is_still(self) -> bool:
        """Measured, and too small to matter."""
        if self.matrix is None:
            return False
        linear, shift = self.matrix[:, :2], self.matrix[:, 2]
        return bool(np.abs(linear - np.eye(2)).max() < STILL_SCALE and np.abs(shift).max() < STILL_SHIFT_PX)


def compose(second: Matrix, first: Matrix) -> Matrix:
    """The affine map `second ∘ first`."""
    full = np.vstack([first, [0.0, 0.0, 1.0]])
    return np.asarray(second @ full, np.float64)


def move_boxes(boxes: FloatArray, matrix: Matrix) -> FloatArray:
    """Axis-aligned boxes through an affine map (each the bounding box of its four moved corners)."""
    xs = boxes[:, [0, 2, 0, 2]].astype(np.float64)
    ys = boxes[:, [1, 1, 3, 3]].astype(np.float64)
    mx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    my = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    moved: FloatArray = np.stack([mx.min(1), my.min(1), mx.max(1), my.max(1)], axis=1).astype(np.float32)
    return moved


def scaled(matrix: Matrix, factor: float) -> Matrix:
    """The same motion expressed in pixels `factor` times as large (e.g. shrunk → frame px)."""
    out = matrix.copy()
    out[:, 2] *= factor
    return out


# A frame moved by a fraction of a pixel is resampled, and on fine texture (a crowd) resampling alone
# changes shrunk pixels by up to 40 grey levels; blurred by this much first, under 12 (bench/README.md).
SOFT_SIGMA = 1.0
SHRINK = 4  # frames are compared, and their motion measured, as grey pictures shrunk this many times


def shrunk_grey(frame: npt.NDArray[np.uint8]) -> Grey:
    """The frame in grey, shrunk SHRINK times (area-averaged: sensor noise and compression fall away)."""
    height, width = frame.shape[:2]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    size = (max(1, width // SHRINK), max(1, height // SHRINK))
    return np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.uint8)


@dataclass(frozen=True)
class FrameView:
    """What a video stage knows of a frame besides its pixels: its shrunk grey and the camera's motion into it."""

    grey: Grey
    motion: CameraMotion

    @cached_property
    def soft(self) -> Grey:
        """The shrunk grey, blurred (σ = SOFT_SIGMA px) for comparisons across a moving camera."""
        return np.asarray(cv2.GaussianBlur(self.grey, (0, 0), SOFT_SIGMA), np.uint8)


class MotionEstimator:
    """Measures the camera's motion between consecutive shrunk grey frames of one stream.

    Each frame is registered against a key frame, not against the frame before it: chaining
    frame-to-frame estimates adds up their errors (a tenth of a pixel a frame is three pixels a
    second, enough to make every textured pixel look changed), while errors against a key frame
    stay those of one estimate. The key frame is renewed every `KEY_FRAMES` frames, or when the
    registration fails.
    """

    def __init__(self, shrink: int = SHRINK) -> None:
        """`shrink`: how many frame pixels one pixel of the grey frames given to `update` spans."""
        self._shrink = shrink
        self._key: Grey | None = None
        self._corners: npt.NDArray[np.float32] | None = None
        self._key_to_previous: Matrix | None = None  # shrunk px
        self._age = 0

    def update(self, grey: Grey) -> CameraMotion:
        """The motion from the previous frame given to this one (still for the first frame)."""
        key, corners, to_previous = self._key, self._corners, self._key_to_previous
        if key is None or corners is None or to_previous is None or key.shape != grey.shape:
            self._new_key(grey)
            return CameraMotion.still() if key is None else CameraMotion.unknown()
        to_current = _fit(key, grey, corners) if len(corners) >= MIN_INLIERS else None
        if to_current is None:
            self._new_key(grey)
            return CameraMotion.unknown()
        step = compose(to_current, np.asarray(cv2.invertAffineTransform(to_previous), np.float64))
        self._age += 1
        if self._age >= KEY_FRAMES:
            self._new_key(grey)
        else:
            self._key_to_previous = to_current
        motion = CameraMotion(scaled(step, self._shrink))
        if motion.is_still or _residual(key, grey, to_current) <= BETTER_THAN_STILL * _residual(key, grey):
            return motion
        self._new_key(grey)  # the people in view moved, not the camera: start afresh from here
        return CameraMotion.still()

    def _new_key(self, grey: Grey) -> None:
        self._key, self._corners = grey, _corners(grey)
        self._key_to_previous = IDENTITY.copy()
        self._age = 0

    def view(self, frame: npt.NDArray[np.uint8]) -> FrameView:
        """The next frame's shrunk grey and the camera's motion into it."""
        grey = shrunk_grey(frame)
        return FrameView(grey, self.update(grey))

    def reset(self) -> None:
        """Forget the previous frames (after a cut, or a new view)."""
        self._key = None
        self._corners = None
        self._key_to_previous = None


def _residual(previous: Grey, current: Grey, matrix: Matrix | None = None) -> float:
    """Mean grey difference between the current frame and the previous one moved along `matrix`."""
    if matrix is None:
        return float(cv2.absdiff(previous, current).mean())
    height, width = current.shape
    moved = cv2.warpAffine(previous, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    margin = 4  # the borders newly in view match nothing
    inner = (slice(margin, height - margin), slice(margin, width - margin))
    return float(cv2.absdiff(moved[inner], current[inner]).mean())


def _corners(grey: Grey) -> npt.NDArray[np.float32] | None:
    found = cv2.goodFeaturesToTrack(grey, MAX_CORNERS, CORNER_QUALITY, CORNER_SPACING, blockSize=5)
    return None if found is None else np.asarray(found, np.float32)


def _fit(previous: Grey, current: Grey, corners: npt.NDArray[np.float32]) -> Matrix | None:
    """The similarity transform most followed corners agree on, or None if too few agree."""
    moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, winSize=(15, 15), maxLevel=3)
    ok = status.reshape(-1) == 1
    if int(ok.sum()) < MIN_INLIERS:
        return None
    src, dst = corners.reshape(-1, 2)[ok], moved.reshape(-1, 2)[ok]
    # RANSAC draws from OpenCV's per-thread generator, whose state depends on what ran before on that
    # thread; seeded per call, the same frames give the same motion in any process (a Ray part
    # measures what the whole run measures).
    cv2.setRNGSeed(RANSAC_SEED)
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=500, confidence=0.995
    )
    if matrix is None or inliers is None:
        return None
    count = int(inliers.sum())
    if count < MIN_INLIERS or count < MIN_INLIER_SHARE * len(src):
        return None
    # Keep shift and zoom, drop the roll: boxes then map to boxes exactly, and a box taken into scene
    # coordinates and back does not grow by the bounding box of its turned corners.
    zoom = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    return np.array([[zoom, 0.0, matrix[0, 2]], [0.0, zoom, matrix[1, 2]]], np.float64)
