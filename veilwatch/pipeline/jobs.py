"""One input file → one veiled output file: images and videos.

A video runs through `veil_stream` (decode → detect and track → veil → encode, overlapping). Any
error aborts the file: the temporary output is deleted, so no partly veiled or unveiled file remains.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veilwatch.errors import InputNotFoundError
from veilwatch.frames import Frame
from veilwatch.media.atomic import atomic_output
from veilwatch.media.encode import VideoWriter
from veilwatch.media.images import format_for_suffix, output_format, read_image, write_image
from veilwatch.media.video import VideoReader
from veilwatch.pipeline.engine import Engine, output_settings
from veilwatch.pipeline.report import StreamReport
from veilwatch.pipeline.stream import veil_stream
from veilwatch.pipeline.tasks import STDIO, MediaKind, Task

Progress = Callable[[int, int], None]  # frames done, frames expected (0: unknown)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    source: str
    output: str
    kind: MediaKind
    frames: int
    faces: int
    tracks: int
    longest_tracked_gap: int
    seconds: float
    report_frames: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The result as JSON-ready data (with per-frame records if collected)."""
        data: dict[str, Any] = {
            "source": self.source,
            "output": self.output,
            "kind": self.kind,
            "frames": self.frames,
            "faces_detected": self.faces,
            "tracks": self.tracks,
            "longest_tracked_gap": self.longest_tracked_gap,
            "seconds": round(self.seconds, 3),
        }
        if self.report_frames:
            data["frame_records"] = self.report_frames
        return data


def run_task(task: Task, engine: Engine, progress: Progress) -> FileResult:
    """Veil one file according to its kind."""
    if task.source != STDIO and not Path(task.source).is_file():
        raise InputNotFoundError("no such file", path=task.source)
    if task.kind == "image":
        return veil_image(task, engine)
    return veil_video(task, engine, progress)


def veil_image(task: Task, engine: Engine) -> FileResult:
    """Veil every face in one still image."""
    started = time.perf_counter()
    settings = output_settings(engine)
    source = sys.stdin.buffer.read() if task.source == STDIO else task.source
    loaded = read_image(source, keep_metadata=settings.keep_metadata)
    veiler = engine.image_veiler()
    report = StreamReport(settings.veil, keep_frames=settings.report)
    veiled = veiler.push(Frame(0, loaded.pixels)) + veiler.finish()
    for done in veiled:
        report.add(done)
    fmt = output_format(loaded.format)
    if task.output != STDIO:
        fmt = format_for_suffix(Path(task.output).suffix) or fmt
    buffer = io.BytesIO()
    write_image(
        veiled[0].frame.pixels,
        buffer,
        fmt,
        quality=settings.jpeg_quality,
        alpha=loaded.alpha,
        metadata=loaded.metadata,
    )
    if task.output == STDIO:
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
    else:
        with atomic_output(Path(task.output), overwrite=task.overwrite) as tmp:
            tmp.write_bytes(buffer.getvalue())
    return FileResult(
        task.source,
        task.output,
        "image",
        1,
        report.faces_found,
        0,
        0,
        time.perf_counter() - started,
        report.frames,
    )


def veil_video(task: Task, engine: Engine, progress: Progress) -> FileResult:
    """Veil every face in every frame of a video, keeping its timing and rotation."""
    started = time.perf_counter()
    settings = output_settings(engine)
    source = Path(task.source)
    with VideoReader(source) as reader:
        info = reader.info
        veiler = engine.video_veiler(info.rate, info.width, info.height)
        report = StreamReport(settings.veil, keep_frames=settings.report)
        audio = reader.audio_template() if settings.video.keep_audio else None
        metadata = reader.container_metadata() if settings.keep_metadata else None
        with (
            atomic_output(Path(task.output), overwrite=task.overwrite) as tmp,
            VideoWriter(tmp, info, settings.video, audio_template=audio, metadata=metadata) as writer,
        ):
            count = veil_stream(reader.frames, veiler, writer.write, report, lambda done: progress(done, info.frames))
            if audio is not None:
                writer.copy_audio(source)
    tracker = veiler.tracker
    tracks = tracker.all_tracks() if tracker is not None else []
    return FileResult(
        task.source,
        task.output,
        "video",
        count,
        report.faces_found,
        len(tracks),
        report.longest_tracked_gap(tracks, place=tracker.image_estimate if tracker is not None else None),
        time.perf_counter() - started,
        report.frames,
    )
