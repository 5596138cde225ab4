"""Is a file an image, a video, or neither? By extension first, then by looking inside."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from veilwatch.errors import OversizedInputError, UnsupportedInputError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".heic", ".heif", ".avif", ".bmp", ".tif", ".tiff"}
)
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".ts",
        ".mts",
        ".m2ts",
        ".mpg",
        ".mpeg",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".y4m",
        ".gif",
    }
)
# Output containers we write as they came; anything else becomes MP4.
KEPT_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv"})

MediaKind = Literal["image", "video"]


def kind_by_suffix(path: Path) -> MediaKind | None:
    """The media kind its extension promises, if any."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def sniff_kind(path: Path) -> MediaKind:
    """The media kind of a file whatever its name, by opening it."""
    from veilwatch.media.images import open_checked

    try:
        with open_checked(str(path)) as img:
            if getattr(img, "n_frames", 1) == 1:
                return "image"
    except OversizedInputError as exc:
        exc.path = str(path)
        raise
    except Exception:  # any decoder failure: not an image we read; try video next
        pass
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if container.streams.video:
                return "video"
    except Exception:  # any demuxer failure: not a video we read either
        pass
    raise UnsupportedInputError("neither an image nor a video that veilwatch reads", path=str(path))


def video_output_suffix(source: Path) -> str:
    """The extension of a veiled video: the input's own where we can write it, else .mp4."""
    suffix = source.suffix.lower()
    return suffix if suffix in KEPT_VIDEO_SUFFIXES else ".mp4"
