"""Veils: irreversible ways to hide a face region. A veil is `apply(image, boxes) -> new image`.

Weak Gaussian blur and fine pixelation can be undone or recognised by a network (McPherson,
Shokri & Shmatikov, "Defeating Image Obfuscation with Deep Learning", 2016). Every veil here is
therefore coarse relative to the face: strength scales with the box, so a 400-px face gets as
little detail through as a 20-px one, and each veil ends with per-region noise so that what
survives is uncorrelated with the original pixels (a blur's residual high frequencies, though
faint, still correlate with the face; noise breaks that, and it defeats deconvolution).

- blur: the region is shrunk to about 3 cells across and enlarged back with smooth
  interpolation (no detail finer than a third of the face survives), then dithered.
- mosaic: about 4 flat cells across the face, each cell shifted by a random offset.
- solid: one flat colour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.boxes import FloatArray, clip_boxes, scale_boxes
from veilwatch.settings import VeilSettings

Image = npt.NDArray[np.uint8]

BLUR_CELLS = 3  # a blurred face keeps about this many resolvable cells across its box
MOSAIC_CELLS = 4  # a mosaic face is at most this many cells across
NOISE_SIGMA = 4.0  # grey levels of dither added to every veiled pixel or cell


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


def pixel_boxes(boxes: FloatArray, box_scale: float, width: int, height: int) -> list[PixelBox]:
    """Veil regions: boxes grown by box_scale, rounded outwards, clipped, empty ones dropped."""
    grown = clip_boxes(scale_boxes(boxes, box_scale), width, height)
    result = []
    for x0, y0, x1, y1 in grown:
        box = PixelBox(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
        if box.width > 0 and box.height > 0:
            result.append(box)
    return result


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    return rng.normal(0.0, NOISE_SIGMA, shape).astype(np.float32)


def _blurred(region: Image, rng: np.random.Generator) -> Image:
    h, w = region.shape[:2]
    if w >= h:
        small_w, small_h = max(1, round(BLUR_CELLS * w / h)), BLUR_CELLS
    else:
        small_w, small_h = BLUR_CELLS, max(1, round(BLUR_CELLS * h / w))
    small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC if min(w, h) > 8 else cv2.INTER_LINEAR)
    noisy = np.asarray(smooth, np.float32) + _noise(smooth.shape, rng)
    veiled: Image = np.clip(noisy, 0, 255).astype(np.uint8)
    return veiled


def _mosaic(region: Image, rng: np.random.Generator) -> Image:
    h, w = region.shape[:2]
    cell = max(2, int(np.ceil(max(w, h) / MOSAIC_CELLS)))
    small_w, small_h = max(1, int(np.ceil(w / cell))), max(1, int(np.ceil(h / cell)))
    small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA).astype(np.float32)
    small += rng.normal(0.0, 2 * NOISE_SIGMA, (small_h, small_w, 1)).astype(np.float32)
    blocks = cv2.resize(
        np.clip(small, 0, 255).astype(np.uint8),
        (small_w * cell, small_h * cell),
        interpolation=cv2.INTER_NEAREST,
    )
    return np.ascontiguousarray(blocks[:h, :w])


def _solid(color: tuple[int, int, int]) -> Callable[[Image, np.random.Generator], Image]:
    def fill(region: Image, rng: np.random.Generator) -> Image:
        return np.broadcast_to(np.asarray(color, np.uint8), region.shape).copy()

    return fill


def _ellipse_mask(height: int, width: int) -> npt.NDArray[np.bool_]:
    ys, xs = np.ogrid[:height, :width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ry, rx = max(height / 2, 0.5), max(width / 2, 0.5)
    mask: npt.NDArray[np.bool_] = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
    return mask


class Veil:
    """Hides every given face box in an image; never modifies the caller's array."""

    def __init__(self, settings: VeilSettings, seed: int | None = None) -> None:
        self._settings = settings
        self._rng = np.random.default_rng(seed)
        fills: dict[str, Callable[[Image, np.random.Generator], Image]] = {
            "blur": _blurred,
            "mosaic": _mosaic,
            "solid": _solid(settings.color),
        }
        self._fill = fills[settings.method]

    def regions(self, boxes: FloatArray, width: int, height: int) -> list[PixelBox]:
        """The pixel regions a veil over these face boxes covers."""
        return pixel_boxes(boxes, self._settings.box_scale, width, height)

    def apply(self, image: Image, boxes: FloatArray) -> Image:
        """A copy of the image with every box veiled."""
        out = image.copy()
        self.apply_in_place(out, boxes)
        return out

    def apply_in_place(self, image: Image, boxes: FloatArray) -> None:
        """Veil every box directly in the given array (for frames the pipeline owns)."""
        height, width = image.shape[:2]
        for box in self.regions(boxes, width, height):
            region = image[box.y0 : box.y1, box.x0 : box.x1]
            veiled = self._fill(region, self._rng)
            if self._settings.shape == "ellipse":
                mask = _ellipse_mask(box.height, box.width)
                region[mask] = veiled[mask]
            else:
                region[...] = veiled
