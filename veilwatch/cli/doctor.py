"""`veilwatch doctor`: what this installation can do, in one screen."""

from __future__ import annotations

import platform
import sys
from typing import cast

from rich.console import Console
from rich.table import Table

from veilwatch import __version__
from veilwatch.errors import ModelError

CODECS_OF_INTEREST = (
    "libx264",
    "libx265",
    "libvpx-vp9",
    "libsvtav1",
    "libaom-av1",
    "h264_nvenc",
    "aac",
    "libopus",
)


HARDWARE_ENCODERS = ("_nvenc", "_qsv", "_vaapi", "_amf")


def _codec_state(name: str, available: set[str]) -> str:
    """✓ or ✗; a hardware encoder counts only if it opens (compiled in is not usable without its device)."""
    if name not in available:
        return "✗"
    if not name.endswith(HARDWARE_ENCODERS):
        return "✓"
    return "✓" if _opens(name) else "✗ (built in, no GPU found)"


def _opens(encoder: str) -> bool:
    """Whether FFmpeg can open this encoder on this machine (a 256 × 256 H.264 stream)."""
    from fractions import Fraction

    import av

    try:
        context = cast("av.VideoCodecContext", av.CodecContext.create(encoder, "w"))
        context.width, context.height, context.pix_fmt = 256, 256, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.open()
    except Exception:  # any failure to open means: not usable here
        return False
    return True


def run() -> int:
    """Print versions, providers, model and codecs; exit 1 if something essential is missing."""
    import av
    import cv2
    import numpy
    import onnxruntime

    from veilwatch.detection.model_files import default_model
    from veilwatch.media.images import register_heif

    console = Console()
    table = Table(title=f"veilwatch {__version__}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("python", f"{sys.version.split()[0]} on {platform.platform()}")
    table.add_row("numpy / opencv", f"{numpy.__version__} / {cv2.__version__}")
    table.add_row("onnxruntime", onnxruntime.__version__)
    table.add_row("onnxruntime providers", ", ".join(onnxruntime.get_available_providers()))
    table.add_row(
        "PyAV / FFmpeg",
        f"{av.__version__} / libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}",
    )
    available = av.codecs_available
    table.add_row("codecs", ", ".join(f"{c} {_codec_state(c, available)}" for c in CODECS_OF_INTEREST))
    table.add_row("HEIC/HEIF", "yes (pillow-heif)" if register_heif() else "no (pip install pillow-heif)")
    healthy = True
    try:
        model = default_model()
        table.add_row("face model", f"{model.path} ({model.origin}, sha256 {model.sha256()[:16]}…)")
    except ModelError as exc:
        table.add_row("face model", f"[red]missing: {exc}[/red]")
        healthy = False
    if "libx264" not in available:
        healthy = False
    console.print(table)
    return 0 if healthy else 1
