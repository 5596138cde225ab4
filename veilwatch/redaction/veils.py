"""Veils: irreversible ways to hide a face region. A veil is `apply(image, boxes) -> new image`.

Weak Gaussian blur and fine pixelation can be undone or recognised by a network (McPherson,
Shokri & Shmatikov, "Defeating Image Obfuscation with Deep Learning", 2016). Every veil here is
therefore coarse relative to the face: strength scales with the box, so a 400-px face gets as
little detail through as a 20-px one, and each veil ends with noise so that what survives is
uncorrelated with the original pixels (a blur's residual high frequencies, though faint, still
correlate with the face; noise breaks that, and it defeats deconvolution). Its strength, σ = 8
grey levels, was set by measurement: at σ = 4 the detail of some small faces still correlated
above veil_check's threshold (bench/README.md).

- blur: the region is shrunk to 2 cells across its short side and enlarged back with smooth
  interpolation (no detail finer than half the face survives), then dithered. Bilinear enlargement
  of so few cells alone would leave a crease at every cell centre, and where the face has a strong
  edge (dark hair over a white mask) the crease lies on it: the residual detail then correlated
  with the face's (0.32 on a 66-px masked face, above veil_check's 0.3). The cells are therefore
  smoothed (Gaussian, σ = BLUR_SMOOTH cells) before the final enlargement.
- mosaic: about 4 flat cells across the face, each cell shifted by a random offset.
- solid: one flat colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.boxes import FloatArray, clip_boxes, coverage, scale_boxes
from veilwatch.settings import VeilSettings

Image = npt.NDArray[np.uint8]

BLUR_CELLS = 2  # a blurred face keeps about this many resolvable cells across its box
BLUR_SMOOTH = 0.5  # σ of the Gaussian that rounds off the blur's cells, in cells
SMOOTH_SAMPLES = 8  # the cells are smoothed at this many pixels per cell (cheap at any face size)
# That Gaussian as a separable kernel over ±3 σ, built once (cv2.GaussianBlur would build it per call,
# which costs more than the filtering of a few cells).
_SMOOTHING = cv2.getGaussianKernel(
    2 * math.ceil(3 * BLUR_SMOOTH * SMOOTH_SAMPLES) + 1, BLUR_SMOOTH * SMOOTH_SAMPLES, cv2.CV_32F
)
MOSAIC_CELLS = 4  # a mosaic face is at most this many cells across
NOISE_SIGMA = 8.0  # grey levels of dither added to every veiled pixel or cell
NOISE_TILE = 768  # side of the pre-generated dither tile
CONTAINED = 0.999  # a box this much inside another needs no veil of its own


@dataclass(frozen=True)
class PixelBox:
    """An integer region of an image: x0, y0 inclusive; x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.y1 - self.y0


def veil_areas(boxes: FloatArray, settings: VeilSettings) -> FloatArray:
    """What a veil covers for each face box: grown by `box_scale`, extended down (or up) by `box_drop`.

    Extended, not moved: detectors' boxes ride high on masked faces (the chin and mouth need
    covering) but sit on or below the hairline of bare ones, and a veil moved down left a 3-px strip
    of forehead with enough detail to recognise (video_veil_check, zoom-ngband_1_149).
    """
    areas = scale_boxes(boxes, settings.box_scale)
    drop = (boxes[:, 3] - boxes[:, 1]) * settings.box_drop
    if settings.box_drop >= 0:
        areas[:, 3] += drop
    else:
        areas[:, 1] += drop
    return areas


def pixel_boxes(boxes: FloatArray, settings: VeilSettings, width: int, height: int) -> list[PixelBox]:
    """Veil regions in whole pixels: rounded outwards, clipped to the image, empty ones dropped."""
    grown = clip_boxes(veil_areas(boxes, settings), width, height)
    result = []
    for x0, y0, x1, y1 in grown:
        box = PixelBox(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
        if box.width > 0 and box.height > 0:
            result.append(box)
    return result


def outermost(boxes: FloatArray) -> FloatArray:
    """The boxes not lying inside another (larger, or equal and earlier) box.

    A box inside another is veiled by the other's veil anyway (veils grow each box about its own
    centre by the same factor, so the inner veil stays inside the outer one); held-over track
    boxes often nest like this, and skipping them saves a third of the veiling work in crowds.
    """
    if len(boxes) < 2:
        return boxes
    inside = coverage(boxes, boxes) >= CONTAINED
    np.fill_diagonal(inside, False)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.arange(len(boxes))
    larger = (areas[None, :] > areas[:, None]) | (
        (areas[None, :] == areas[:, None]) & (order[None, :] < order[:, None])
    )
    keep = ~(inside & larger).any(axis=1)
    kept: FloatArray = boxes[keep]
    return kept


class _Noise:
    """Gaussian dither drawn from a pre-generated tile at random offsets (fast, content-blind).

    The signed noise is kept as two unsigned tiles (its positive and negative parts), so adding
    it is two saturating uint8 operations in OpenCV instead of a round trip through int16.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        noise = rng.standard_normal((NOISE_TILE, NOISE_TILE, 3), np.float32)  # float32: half the start-up cost
        noise *= NOISE_SIGMA
        np.rint(noise, out=noise)
        self._plus = np.clip(noise, 0, 255).astype(np.uint8)
        self._minus = np.clip(-noise, 0, 255).astype(np.uint8)

    def _window(self, tile: Image, height: int, width: int, oy: int, ox: int) -> Image:
        if height <= NOISE_TILE and width <= NOISE_TILE:
            return tile[oy : oy + height, ox : ox + width]
        rows = np.arange(height) % NOISE_TILE  # a region larger than the tile repeats it
        cols = np.arange(width) % NOISE_TILE
        return tile[rows][:, cols]

    def add(self, region: Image, strength: int = 1) -> Image:
        """The region with dither added (saturating), `strength` times the base sigma."""
        h, w = region.shape[:2]
        oy = int(self._rng.integers(0, max(1, NOISE_TILE - h + 1)))
        ox = int(self._rng.integers(0, max(1, NOISE_TILE - w + 1)))
        plus = self._window(self._plus, h, w, oy, ox)[:, :, : region.shape[2]]
        minus = self._window(self._minus, h, w, oy, ox)[:, :, : region.shape[2]]
        for _ in range(strength):
            region = np.asarray(cv2.subtract(cv2.add(region, plus), minus), np.uint8)
        return region


def _dithered(region: npt.NDArray[np.uint8], noise: _Noise) -> Image:
    return noise.add(np.ascontiguousarray(region))


def _blurred(region: Image, noise: _Noise) -> Image:
    h, w = region.shape[:2]
    if w >= h:
        small_w, small_h = max(1, round(BLUR_CELLS * w / h)), BLUR_CELLS
    else:
        small_w, small_h = BLUR_CELLS, max(1, round(BLUR_CELLS * h / w))
    small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
    fine = cv2.resize(small, (small_w * SMOOTH_SAMPLES, small_h * SMOOTH_SAMPLES), interpolation=cv2.INTER_LINEAR)
    fine = cv2.sepFilter2D(fine, -1, _SMOOTHING, _SMOOTHING, borderType=cv2.BORDER_REPLICATE)
    smooth = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    return _dithered(np.asarray(smooth, np.uint8), noise)


def _mosaic(region: Image, noise: _Noise) -> Image:
    h, w = region.shape[:2]
    cell = max(2, int(np.ceil(max(w, h) / MOSAIC_CELLS)))
    small_w, small_h = max(1, int(np.ceil(w / cell))), max(1, int(np.ceil(h / cell)))
    small = np.asarray(cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA), np.uint8)
    cells = noise.add(small, strength=2)
    blocks = cv2.resize(cells, (small_w * cell, small_h * cell), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(blocks[:h, :w], np.uint8)


def _solid(color: tuple[int, int, int]) -> Callable[[Image, _Noise], Image]:
    def fill(region: Image, noise: _Noise) -> Image:
        return np.broadcast_to(np.asarray(color, np.uint8), region.shape).copy()

    return fill


def _ellipse_mask(height: int, width: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), np.uint8)
    centre = ((width - 1) / 2, (height - 1) / 2)
    cv2.ellipse(mask, (centre, (float(width), float(height)), 0.0), 1, thickness=-1)
    return mask.astype(bool)


class Veil:
    """Hides every given face box in an image; never modifies the caller's array."""

    def __init__(self, settings: VeilSettings, seed: int | None = None) -> None:
        self._settings = settings
        self._noise = _Noise(np.random.default_rng(seed))
        fills: dict[str, Callable[[Image, _Noise], Image]] = {
            "blur": _blurred,
            "mosaic": _mosaic,
            "solid": _solid(settings.color),
        }
        self._fill = fills[settings.method]

    def regions(self, boxes: FloatArray, width: int, height: int) -> list[PixelBox]:
        """The pixel regions a veil over these face boxes covers."""
        return pixel_boxes(boxes, self._settings, width, height)

    def apply(self, image: Image, boxes: FloatArray) -> Image:
        """A copy of the image with every box veiled."""
        out = image.copy()
        self.apply_in_place(out, boxes)
        return out

    def apply_in_place(self, image: Image, boxes: FloatArray) -> None:
        """Veil every box directly in the given array (for frames the pipeline owns)."""
        height, width = image.shape[:2]
        for box in self.regions(outermost(boxes), width, height):
            region = image[box.y0 : box.y1, box.x0 : box.x1]
            veiled = self._fill(region, self._noise)
            if self._settings.shape == "ellipse":
                np.copyto(region, veiled, where=_ellipse_mask(box.height, box.width)[..., None])
            else:
                region[...] = veiled
