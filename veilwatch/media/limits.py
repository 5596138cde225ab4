"""How large a picture veilwatch agrees to decode, checked against the sizes a file declares.

A few bytes can declare billions of pixels (a "decompression bomb"): decoding them would take
minutes and gigabytes before failing. Sizes are therefore checked from the header, before any
pixel is decoded, and Pillow's own bomb check is set to the same limit.
"""

from __future__ import annotations

from veilwatch.errors import CorruptInputError, OversizedInputError

# Still images: 100 megapixels (a 12,000 × 8,000 photo fits), at most 65,535 pixels on a side
# (the largest side JPEG, PNG viewers and most encoders handle).
MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_SIDE = 65_535
# Video frames: up to 8K (8192 × 4320 = 35 megapixels; several frames are in flight at once), at
# most 16,384 pixels on a side (the largest HEVC/AV1 level).
MAX_VIDEO_PIXELS = 40_000_000
MAX_VIDEO_SIDE = 16_384


def check_image_size(width: int, height: int) -> None:
    """Refuse a still image whose declared size is beyond the limits (before decoding it)."""
    _check(width, height, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, "image")


def check_frame_size(width: int, height: int) -> None:
    """Refuse a video whose declared frame size is beyond the limits (before decoding it)."""
    _check(width, height, MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE, "video")


def _check(width: int, height: int, max_pixels: int, max_side: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise CorruptInputError(f"{what} declares an empty picture ({width} × {height} pixels)")
    if max(width, height) > max_side:
        raise OversizedInputError(
            f"{what} declares {width} × {height} pixels; veilwatch reads at most {max_side:,} on a side"
        )
    if width * height > max_pixels:
        raise OversizedInputError(
            f"{what} declares {width} × {height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"veilwatch reads at most {max_pixels / 1e6:.0f} megapixels"
        )
