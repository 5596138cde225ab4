"""Frames of a camera's veiled recording over a time range, decoded with their wall-clock times."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from veilwatch.errors import StorageError
from veilwatch.frames import Image
from veilwatch.storage.recordings import SegmentIndex

__all__ = ["TimedFrame", "encode_mp4", "recorded_frames"]

TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True)
class TimedFrame:
    """One recorded (veiled) frame and its wall-clock capture time in seconds."""

    at: float
    pixels: Image


def recorded_frames(segments: SegmentIndex, camera: str, start: float, end: float) -> Iterator[TimedFrame]:
    """The complete segments' frames of `camera` with start <= time <= end, in time order."""
    import av

    for segment in segments.list(camera, start, end):
        if segment.status != "complete":
            continue
        path = segments.absolute(segment.path)
        try:
            with av.open(str(path), mode="r") as container:
                stream = container.streams.video[0]
                for frame in container.decode(stream):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    at = segment.start_at + float(frame.pts * frame.time_base)
                    if start <= at <= end:
                        yield TimedFrame(at, np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
        except (OSError, av.error.FFmpegError) as exc:
            raise StorageError(f"cannot read a recording: {exc}", path=segment.path) from exc


def encode_mp4(frames: Iterable[TimedFrame], fps: float, crf: int = 20) -> tuple[bytes, int]:
    """An H.264 MP4 of the frames, in memory (nothing touches the disk), without tags; its bytes and frame count."""
    import av

    buffer = io.BytesIO()
    count = 0
    # +bitexact: no encoder or library version tags; the clip carries nothing but the pictures.
    with av.open(buffer, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = None
        first_at = 0.0
        last_pts = -1
        for frame in frames:
            if stream is None:
                height, width = frame.pixels.shape[:2]
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = width - width % 2, height - height % 2
                stream.pix_fmt = "yuv420p"
                stream.time_base = TIME_BASE
                stream.codec_context.time_base = TIME_BASE
                stream.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
                first_at = frame.at
            pixels = np.ascontiguousarray(frame.pixels[: stream.height, : stream.width])
            video_frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            pts = max(round((frame.at - first_at) / TIME_BASE), last_pts + 1)
            video_frame.pts, video_frame.time_base = pts, TIME_BASE
            container.mux(stream.encode(video_frame))
            last_pts = pts
            count += 1
        if stream is None:
            raise StorageError("no recorded frames in that time range")
        container.mux(stream.encode(None))
    return buffer.getvalue(), count
