"""Video in with PyAV: upright RGB frames with their original timestamps, and the file's timing.

Encoding (files, recordings, clips) is `veilwatch.media.encode`'s.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from veilwatch.errors import CorruptInputError, UnsupportedInputError, VeilwatchError
from veilwatch.frames import Frame, Image
from veilwatch.media.limits import check_frame_size

log = logging.getLogger(__name__)

# Most frames a file may lack compared with its own index before it counts as truncated.
TRUNCATION_SLACK = 2
# Most seconds a file's video may end before the duration its header announces, beyond the
# frames of slack above at the stream's rate (timestamps are rounded to the container's clock).
DURATION_SLACK_S = 0.05
# Transport streams are sequences of fixed-size packets: a file cut mid-packet is truncated.
_TS_PACKET_SIZES = {"mpegts": (188, 192, 204)}
GIF_TRAILER = b";"


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream is, as seen upright."""

    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int  # 0 when the container does not say
    duration_s: float | None
    rotation: int  # degrees, as the display matrix says (counter-clockwise)
    has_audio: bool
    container_format: str


def rotation_steps(rotation: int) -> int:
    """Quarter turns (counter-clockwise) that make a coded picture upright."""
    return round(rotation / 90) % 4


class VideoReader:
    """Decodes the first video stream of a file into upright RGB frames."""

    def __init__(self, path: Path) -> None:
        import av

        self._path = path
        try:
            self._container = av.open(str(path), mode="r", metadata_errors="ignore")
        except av.error.FileNotFoundError as exc:
            raise CorruptInputError("file vanished before it could be read") from exc
        except Exception as exc:  # the demuxing boundary: whatever FFmpeg or PyAV raise on a hostile file
            raise CorruptInputError(f"cannot open as video ({reason(exc)})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise UnsupportedInputError("no video stream in this file")
        self._stream = self._container.streams.video[0]
        try:
            self._refuse_before_decoding()
        except BaseException:
            self._container.close()
            raise
        # One decoding thread: decoding runs far ahead of detection, and FFmpeg's frame threads only
        # contend for the cores the detector needs (facenet at 720p on 2 cores: 6.22 → 5.96 s, three
        # alternating pairs of runs).
        self._stream.thread_count = 1
        self._decoded = self._container.decode(self._stream)
        self._first: av.VideoFrame = self._first_frame()
        self.info = self._probe(int(self._first.rotation or 0))

    def _refuse_before_decoding(self) -> None:
        """Refuse a frame size beyond the limits, and a file cut short, before decoding a pixel."""
        ctx = self._stream.codec_context  # None when FFmpeg has no decoder for the stream
        if ctx is not None and ctx.width and ctx.height:
            check_frame_size(ctx.width, ctx.height)
        short = _cut_short(self._path, self._container.format.name)
        if short:
            raise CorruptInputError(short)

    def _first_frame(self) -> Any:
        try:
            first = next(self._decoded, None)
            if first is not None:
                check_frame_size(first.width, first.height)
        except VeilwatchError:
            self._container.close()
            raise
        except Exception as exc:  # the decoding boundary: whatever FFmpeg or PyAV raise on a hostile file
            self._container.close()
            raise CorruptInputError(f"cannot decode the first frame ({reason(exc)})") from exc
        if first is None:
            self._container.close()
            raise CorruptInputError("no frame could be decoded")
        return first

    def _probe(self, rotation: int) -> VideoInfo:
        stream = self._stream
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        time_base = stream.time_base or Fraction(1, 90000)
        width, height = ctx.width, ctx.height
        if rotation_steps(rotation) % 2:
            width, height = height, width
        duration = float(stream.duration * time_base) if stream.duration else None
        if duration is None and self._container.duration:
            duration = self._container.duration / 1_000_000
        return VideoInfo(
            width=width,
            height=height,
            rate=Fraction(rate),
            time_base=Fraction(time_base),
            frames=int(stream.frames or 0),
            duration_s=duration,
            rotation=rotation,
            has_audio=bool(self._container.streams.audio),
            container_format=self._container.format.name,
        )

    def container_metadata(self) -> dict[str, str]:
        """The container's tags (only used with --keep-metadata)."""
        return {str(k): str(v) for k, v in self._container.metadata.items()}

    def audio_template(self) -> Any:
        """The first audio stream, as a template for copying it (None if there is none)."""
        return self._container.streams.audio[0] if self._container.streams.audio else None

    def frames(self) -> Iterator[Frame]:
        """Every frame in presentation order; raises CorruptInputError on damage or truncation."""
        steps = rotation_steps(self.info.rotation)
        index = 0
        end_s: float | None = None
        last_corrupt = False
        try:
            for decoded in itertools.chain([self._first], self._decoded):
                pixels: Image = np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8)
                if steps:
                    pixels = np.ascontiguousarray(np.rot90(pixels, steps))
                time_base = decoded.time_base or self.info.time_base
                yield Frame(index, pixels, decoded.pts, time_base, decoded.duration or None)
                index += 1
                end_s = max(end_s or 0.0, _frame_end_s(decoded, time_base, self._stream.start_time) or 0.0)
                last_corrupt = bool(decoded.is_corrupt)
        except Exception as exc:  # the decoding boundary: whatever FFmpeg or PyAV raise mid-stream
            short = self._shortfall(index, end_s)
            raise CorruptInputError(f"{short or f'damaged video after frame {index}'} ({reason(exc)})") from exc
        short = self._shortfall(index, end_s) or (
            f"truncated video: its last frame (frame {index}) is incomplete" if last_corrupt else None
        )
        if short:
            raise CorruptInputError(short)

    def _shortfall(self, decoded: int, end_s: float | None) -> str | None:
        """How the file falls short of the frames or the duration its header announces, if it does."""
        if self.info.frames and decoded < self.info.frames - TRUNCATION_SLACK:
            return f"truncated video: decoded {decoded} of {self.info.frames} frames"
        announced = self._announced_duration_s()
        if announced is None or end_s is None:
            return None
        slack = DURATION_SLACK_S + TRUNCATION_SLACK / float(self.info.rate or 25)
        if end_s < announced - slack:
            return f"truncated video: it ends at {end_s:.2f} s of the {announced:.2f} s its header announces"
        return None

    def _announced_duration_s(self) -> float | None:
        """The video's duration as the header states it: the stream's own, else the container's if
        the file holds no other stream (a longer audio track must not look like lost video)."""
        stream = self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        tagged = _parse_duration_tag(stream.metadata.get("DURATION"))  # Matroska/WebM per-track tag
        if tagged is not None:
            return tagged
        if len(self._container.streams) == 1 and self._container.duration:
            return float(self._container.duration) / 1_000_000
        return None

    def close(self) -> None:
        """Release the file (idempotent)."""
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_end_s(frame: Any, time_base: Fraction, start: int | None) -> float | None:
    """When a decoded frame ends, in seconds from time zero (None without timestamps).

    Measured from zero, not from the stream's start: some containers (Matroska) count their
    duration from zero, others from the first frame, and the larger figure never calls a whole
    file truncated. A negative start (edit lists) is counted back in.
    """
    if frame.pts is None or not time_base:
        return None
    return float((frame.pts - min(start or 0, 0) + (frame.duration or 0)) * time_base)


def _parse_duration_tag(tag: str | None) -> float | None:
    """A Matroska DURATION tag (HH:MM:SS.fraction) in seconds."""
    if not tag:
        return None
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _cut_short(path: Path, container_format: str) -> str | None:
    """A truncation visible in the file's bytes alone: a transport stream cut mid-packet, a GIF without its trailer."""
    fmt = container_format.split(",", maxsplit=1)[0]
    try:
        size = path.stat().st_size
        if fmt in _TS_PACKET_SIZES and not any(size % packet == 0 for packet in _TS_PACKET_SIZES[fmt]):
            return f"truncated transport stream: {size} bytes is not a whole number of packets"
        if fmt == "gif":
            with path.open("rb") as file:
                file.seek(max(0, size - 4096))
                tail = file.read().rstrip(b"\0")
            if not tail.endswith(GIF_TRAILER):
                return "truncated GIF: the file ends before its trailer"
    except OSError as exc:
        return f"cannot read the file ({reason(exc)})"
    return None


def reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200]
