"""Every video encoder of veilwatch: files, fragmented MP4 segments and in-memory clips.

`VideoWriter` re-encodes a decoded file: the input's time base, timestamps and rotation, nothing
else of the input (no tags, no data, subtitle or attachment streams, audio only on request:
voices identify people). `TimedEncoder` encodes frames stamped with wall-clock seconds, into a
crash-safe fragmented MP4 (`fragmented_mp4`: recordings) or an MP4 in memory (`mp4_in_memory`:
clips that must never touch the disk). Output writing happens here only, so that a signing step
(C2PA) has one place to hook in.
"""

from __future__ import annotations

import errno
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from veilwatch.errors import CorruptInputError, OutputError
from veilwatch.frames import Frame, Image
from veilwatch.media.video import VideoInfo, reason, rotation_steps
from veilwatch.settings import VideoOutputSettings

log = logging.getLogger(__name__)

# Encoder options by codec: which quality/speed knobs each understands.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265"}
# Containers that cannot hold H.264, and the encoder used there when none was asked for.
_CONTAINER_CODEC = {"webm": "libvpx-vp9", "ogg": "libtheora"}
# No encoder or library version tags: an output carries nothing but the pictures.
BITEXACT = {"fflags": "+bitexact"}
TIME_BASE = Fraction(1, 90_000)  # the usual clock of video streams, for frames stamped in seconds
FRAGMENTED_MP4 = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # Hand each finished fragment to the OS at once, not when FFmpeg's I/O buffer fills.
    "flush_packets": "1",
}


def encoder_for(codec: str, container_format: str) -> str:
    """The encoder used for `codec` in a container of this (FFmpeg) format: H.264 cannot go into WebM or Ogg."""
    fmt = container_format.split(",", maxsplit=1)[0]
    return _CONTAINER_CODEC[fmt] if codec == "libx264" and fmt in _CONTAINER_CODEC else codec


class VideoWriter:
    """Encodes upright RGB frames into a new file with the input's timing and rotation."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        settings: VideoOutputSettings,
        *,
        container_format: str | None = None,
        audio_template: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        import av

        self._path = path
        self._info = info
        self._steps_back = (4 - rotation_steps(info.rotation)) % 4
        try:
            self._container = av.open(str(path), mode="w", format=container_format, options=BITEXACT)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot create video file ({reason(exc)})", path=str(path)) from exc
        try:
            self._stream = self._add_video_stream(settings)
            self._audio = self._container.add_stream_from_template(audio_template) if audio_template else None
        except BaseException:
            self._container.close()
            raise
        if metadata:
            self._container.metadata.update(metadata)
        self._frames_written = 0

    def _add_video_stream(self, settings: VideoOutputSettings) -> Any:
        import av

        codec = encoder_for(settings.codec, self._container.format.name)
        try:
            stream = cast("av.VideoStream", self._container.add_stream(codec, rate=self._info.rate))
        except (av.error.FFmpegError, ValueError, KeyError) as exc:
            raise OutputError(f"unknown or unusable video encoder {codec!r} ({reason(exc)})") from exc
        coded_w, coded_h = self._info.width, self._info.height
        if self._steps_back % 2:
            coded_w, coded_h = coded_h, coded_w
        stream.width, stream.height = coded_w - coded_w % 2, coded_h - coded_h % 2
        stream.time_base = self._info.time_base
        stream.codec_context.time_base = self._info.time_base
        formats = [f.name for f in (stream.codec_context.codec.video_formats or [])]
        stream.pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
        options: dict[str, str] = {}
        if codec in _CRF_CODECS:
            options["crf"] = str(settings.crf)
        if codec in _PRESET_CODECS:
            options["preset"] = settings.preset
        if codec.startswith("libvpx"):
            options["b"] = "0"
            options["deadline"] = "realtime"
            options["cpu-used"] = "8"
        stream.codec_context.options = options
        if self._info.rotation:
            stream.set_display_rotation(self._info.rotation)
        return stream

    def write(self, frame: Frame) -> None:
        """Encode one upright RGB frame at its original timestamp."""
        import av

        pixels = frame.pixels
        if self._steps_back:
            pixels = np.ascontiguousarray(np.rot90(pixels, self._steps_back))
        pixels = pixels[: self._stream.height, : self._stream.width]
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        video_frame.pts = self._pts(frame)
        video_frame.time_base = self._info.time_base
        if frame.duration and frame.time_base == self._info.time_base:
            video_frame.duration = frame.duration  # keeps the last frame's length in VFR video
        self._mux(self._encode(video_frame))
        self._frames_written += 1

    def _pts(self, frame: Frame) -> int:
        if frame.pts is not None and frame.time_base == self._info.time_base:
            return int(frame.pts)
        if frame.pts is not None and frame.time_base is not None:
            return round(frame.pts * frame.time_base / self._info.time_base)
        return round(frame.index / self._info.rate / self._info.time_base)

    def _encode(self, frame: Any) -> Any:
        """The encoder's packets for a frame (None: flush); an encoder refusal is an OutputError."""
        import av

        try:
            return self._stream.encode(frame)
        except av.error.FFmpegError as exc:  # e.g. timestamps a damaged input left out of order
            raise OutputError(f"cannot encode the veiled video ({reason(exc)})") from exc

    def _mux(self, packets: Any) -> None:
        import av

        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, OSError) as exc:
            # No path: the caller names the input (the temporary file's name would mean nothing to the user).
            raise OutputError(f"cannot write the veiled video ({reason(exc)})") from exc

    def copy_audio(self, source: Path) -> None:
        """Copy the first audio stream of `source` packet by packet (no re-encoding)."""
        import av

        if self._audio is None:
            return
        with av.open(str(source), mode="r", metadata_errors="ignore") as container:
            audio_in = container.streams.audio[0]
            try:
                for packet in container.demux(audio_in):
                    if packet.dts is None:
                        continue
                    packet.stream = self._audio
                    self._mux(packet)
            except av.error.FFmpegError as exc:
                raise CorruptInputError(f"damaged audio ({reason(exc)})", path=str(source)) from exc

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        try:
            self._mux(self._encode(None))
        finally:
            self._container.close()

    def abandon(self) -> None:
        """Close without flushing (the caller deletes the file)."""
        try:
            self._container.close()
        except Exception as exc:
            log.debug("closing abandoned output: %s", exc)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


@dataclass(frozen=True)
class TimedStream:
    """What a `TimedEncoder` makes: codec and its knobs, frame rate and size, keyframe spacing."""

    width: int
    height: int
    fps: float
    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 20
    keyframe_seconds: float | None = None  # None: the encoder decides (no forced keyframes)
    zero_latency: bool = False  # no B-frames, no look-ahead: a frame reaches the file within a fragment


class TimedEncoder:
    """Encodes RGB frames stamped with seconds into one MP4 container (file or memory).

    PyAV and I/O failures surface as OSError (with the errno where FFmpeg gives one), so that a
    caller can tell a full disk from anything else.
    """

    def __init__(self, target: str | io.BytesIO, spec: TimedStream, options: dict[str, str]) -> None:
        import av

        try:
            self._container: Any = av.open(target, mode="w", format="mp4", options=dict(options))
        except av.error.FFmpegError as exc:
            raise as_os_error(exc) from exc
        try:
            self._stream = _timed_stream(self._container, spec)
        except BaseException:
            self._container.close()
            raise
        self._spec = spec
        self._start_at: float | None = None
        self._last_key_at = -math.inf
        self.last_pts = -1
        self.frames = 0

    def write(self, pixels: Image, at: float) -> None:
        """Encode one H×W×3 RGB frame shown at `at` seconds (timestamps never run backwards)."""
        import av
        from av.video.frame import PictureType

        start = self._start_at = at if self._start_at is None else self._start_at
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(pixels[: self._stream.height, : self._stream.width]), format="rgb24"
        )
        pts = max(round((at - start) / TIME_BASE), self.last_pts + 1)
        frame.pts, frame.time_base = pts, TIME_BASE
        every = self._spec.keyframe_seconds
        if every is not None and at - self._last_key_at >= every:
            frame.pict_type = PictureType.I  # by time, not frame count: the frame rate may vary
            self._last_key_at = at
        try:
            self._container.mux(self._stream.encode(frame))
        except av.error.FFmpegError as exc:
            raise as_os_error(exc) from exc
        self.last_pts = pts
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the container."""
        import av

        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except av.error.FFmpegError as exc:
            raise as_os_error(exc) from exc

    def abandon(self) -> None:
        """Close without flushing (after a failure; the caller repairs or deletes the output)."""
        try:
            self._container.close()
        except Exception as exc:  # closing after a failed write may fail too
            log.debug("closing an abandoned encoder: %s", exc)


def _timed_stream(container: Any, spec: TimedStream) -> Any:
    stream = container.add_stream(spec.codec, rate=Fraction(spec.fps).limit_denominator(1001))
    stream.width, stream.height = spec.width - spec.width % 2, spec.height - spec.height % 2  # 4:2:0: even sizes
    stream.pix_fmt = "yuv420p"
    stream.time_base = TIME_BASE
    stream.codec_context.time_base = TIME_BASE
    if spec.keyframe_seconds is not None:
        stream.codec_context.gop_size = max(1, math.ceil(spec.fps * spec.keyframe_seconds))
    if spec.codec in _PRESET_CODECS:
        options = {"preset": spec.preset, "crf": str(spec.crf)}
        if spec.zero_latency:
            options |= {"tune": "zerolatency", "forced-idr": "1"}  # a forced keyframe is an IDR a fragment starts at
        stream.codec_context.options = options
    return stream


def fragmented_mp4(path: Path, spec: TimedStream) -> TimedEncoder:
    """A crash-safe fragmented MP4 file: a killed process leaves one that plays up to its last fragment."""
    return TimedEncoder(str(path), spec, FRAGMENTED_MP4)


def mp4_in_memory(frames: Iterable[tuple[float, Image]], fps: float, crf: int = 20) -> tuple[bytes, int]:
    """An H.264 MP4 of (seconds, RGB pixels) frames, in memory (nothing touches the disk); its bytes and frame count."""
    buffer = io.BytesIO()
    encoder: TimedEncoder | None = None
    try:
        for at, pixels in frames:
            if encoder is None:
                height, width = pixels.shape[:2]
                encoder = TimedEncoder(buffer, TimedStream(width, height, fps, crf=crf), BITEXACT)
            encoder.write(pixels, at)
    except BaseException:
        if encoder is not None:
            encoder.abandon()
        raise
    if encoder is None:
        return b"", 0
    encoder.close()
    return buffer.getvalue(), encoder.frames


def check_encoder(codec: str) -> bool:
    """Whether FFmpeg has an encoder of this name."""
    import av

    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def as_os_error(exc: BaseException) -> OSError:
    """PyAV reports I/O failures as FFmpegError carrying the errno; one type is easier to handle."""
    if isinstance(exc, OSError):
        return exc
    code = getattr(exc, "errno", None)
    return OSError(code if isinstance(code, int) else errno.EIO, str(exc))
