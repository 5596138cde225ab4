"""Frames of a camera's veiled recording over a time range, decoded with their wall-clock times."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from veilwatch.errors import StorageError
from veilwatch.frames import Image
from veilwatch.media.encode import mp4_in_memory
from veilwatch.storage.recordings import SegmentIndex

__all__ = ["TimedFrame", "encode_mp4", "recorded_frames"]


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
    data, count = mp4_in_memory(((frame.at, frame.pixels) for frame in frames), fps, crf)
    if not count:
        raise StorageError("no recorded frames in that time range")
    return data, count
