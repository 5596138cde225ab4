"""`veilwatch doctor`: what this installation can do, in one screen."""

from __future__ import annotations

import platform
import sys

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
    table.add_row("codecs", ", ".join(f"{c} {'✓' if c in available else '✗'}" for c in CODECS_OF_INTEREST))
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
