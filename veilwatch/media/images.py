"""Still images in and out, with Pillow: decode upright RGB, encode with no metadata at all.

Every output image is built from the veiled pixel array alone, so nothing of the original file
(EXIF, GPS, XMP, maker notes, embedded thumbnails, comments, ICC profiles) is carried over unless
`keep_metadata` is asked for. Colour-managed inputs are converted to sRGB first, so dropping the
profile does not shift colours. EXIF orientation is applied to the pixels, since the tag that
would rotate them is gone.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from veilwatch.errors import (
    CorruptInputError,
    OutputError,
    OversizedInputError,
    UnsupportedInputError,
    VeilwatchError,
)
from veilwatch.media.limits import MAX_IMAGE_PIXELS, check_image_size

# Pillow format name → the format we write back (same family; GIF/BMP/TIFF become PNG, lossless).
OUTPUT_FORMAT = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "HEIF": "HEIF", "AVIF": "AVIF"}
OUTPUT_SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "HEIF": (".heic", ".heif"),
    "AVIF": (".avif",),
}
ANIMATED_FORMATS = {"GIF", "WEBP", "PNG"}

_heif_registered = False


def register_heif() -> bool:
    """Teach Pillow HEIC/HEIF if pillow-heif is installed, and set its size limit; returns whether HEIF is there."""
    global _heif_registered  # noqa: PLW0603 - a one-time plugin registration, idempotent
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow's bomb check, at our limit (see media/limits.py)
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            return False
        register_heif_opener()
        _heif_registered = True
    return True


def open_checked(stream: str | IO[bytes]) -> Image.Image:
    """Open an image (headers only) and refuse it if its declared size is beyond the limits.

    Pillow's decompression-bomb warning becomes an error here, so that an image between the
    limit and twice the limit is refused too instead of being decoded after a warning.
    """
    register_heif()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(stream)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            declared = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(declared.group(1)) / 1e6:.0f} megapixels" if declared else "too many pixels"
            raise OversizedInputError(
                f"image declares {size}; veilwatch reads at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
            ) from exc
    try:
        check_image_size(*img.size)
    except VeilwatchError:
        img.close()
        raise
    return img


@dataclass(frozen=True)
class LoadedImage:
    """An upright RGB picture plus what is needed to write it back in its own format."""

    pixels: npt.NDArray[np.uint8]
    format: str
    alpha: npt.NDArray[np.uint8] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def read_image(source: str | bytes | IO[bytes], *, keep_metadata: bool = False) -> LoadedImage:
    """Decode an image file (path, bytes or binary stream) to upright sRGB pixels.

    Whatever a decoder raises on a hostile file (Pillow's plugins raise OSError, ValueError,
    TypeError, RuntimeError, struct.error, ...) becomes one InputError naming the reason.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file's metadata warnings are noise, not news
            return _decode(stream, keep_metadata)
    except VeilwatchError:
        raise
    except UnidentifiedImageError as exc:
        raise UnsupportedInputError("not an image format veilwatch reads") from exc
    except MemoryError as exc:
        raise CorruptInputError("not enough memory to decode this image") from exc
    except Exception as exc:  # the decoding boundary: any decoder failure means a damaged file
        raise CorruptInputError(f"damaged or truncated image ({_describe(exc)})") from exc


def _decode(stream: str | IO[bytes], keep_metadata: bool) -> LoadedImage:
    with open_checked(stream) as img:
        fmt = img.format or "PNG"
        if getattr(img, "n_frames", 1) > 1 and fmt in ANIMATED_FORMATS:
            raise UnsupportedInputError(f"animated {fmt} images are not supported; convert to a video first")
        img.load()
        metadata = _kept_metadata(img) if keep_metadata else {}
        upright = ImageOps.exif_transpose(img) or img
        check_image_size(*upright.size)
        rgb, alpha = _to_srgb(upright)
        return LoadedImage(np.asarray(rgb, np.uint8).copy(), fmt, alpha, metadata)


def _describe(exc: BaseException) -> str:
    """An exception as a short reason: its message, or its type when it has none."""
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, (OSError, ValueError, SyntaxError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _kept_metadata(img: Image.Image) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    exif = img.getexif()
    if exif:
        exif[0x0112] = 1  # orientation: the pixels are written upright
        kept["exif"] = exif.tobytes()
    if img.info.get("icc_profile"):
        kept["icc_profile"] = img.info["icc_profile"]
    return kept


def _to_srgb(img: Image.Image) -> tuple[Image.Image, npt.NDArray[np.uint8] | None]:
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), np.uint8).copy()
        img = rgba
    profile = img.info.get("icc_profile")
    if img.mode.startswith("I") or img.mode == "F":
        img = _eight_bit_grey(img)
    rgb = img.convert("RGB")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            rgb = ImageCms.profileToProfile(rgb, source, ImageCms.createProfile("sRGB")) or rgb
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: keep the pixels as they are
    return rgb, alpha


def _eight_bit_grey(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greys scaled to 8 bits (Pillow's convert would clip them)."""
    values = np.asarray(img)
    if img.mode == "F":
        top = 1.0 if float(values.max(initial=0.0)) <= 1.0 else 255.0
        grey = np.clip(values / top * 255.0, 0, 255)
    elif img.mode.startswith("I;16") or int(values.max(initial=0)) > 255:
        grey = np.clip(values, 0, 65535) / 257.0
    else:
        grey = values
    return Image.fromarray(np.round(grey).astype(np.uint8), "L")


def output_format(loaded_format: str) -> str:
    """The format an image of this input format is written back as."""
    return OUTPUT_FORMAT.get(loaded_format, "PNG")


def format_for_suffix(suffix: str) -> str | None:
    """The format an output file name asks for, if it names one we write."""
    for fmt, known in OUTPUT_SUFFIXES.items():
        if suffix.lower() in known:
            return fmt
    return None


def image_output_suffix(source: str) -> str:
    """The extension of a veiled image: the input's own where we write that format, else .png."""
    suffix = source[source.rfind(".") :].lower() if "." in source else ""
    return suffix if format_for_suffix(suffix) else ".png"


def write_image(
    pixels: npt.NDArray[np.uint8],
    target: IO[bytes],
    fmt: str,
    *,
    quality: int = 95,
    alpha: npt.NDArray[np.uint8] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Encode pixels (and alpha) into a binary stream in the given format, without metadata."""
    register_heif()
    img = Image.fromarray(pixels, "RGB")
    if alpha is not None and fmt in ("PNG", "WEBP", "HEIF", "AVIF"):
        img.putalpha(Image.fromarray(alpha, "L"))
    options: dict[str, Any] = dict(metadata or {})
    if fmt in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["quality"] = quality
    if fmt == "JPEG":
        options["subsampling"] = "4:2:0" if quality < 90 else "4:4:4"
    try:
        img.save(target, fmt, **options)
    except (OSError, KeyError, ValueError) as exc:
        raise OutputError(f"cannot encode {fmt}: {exc}") from exc
