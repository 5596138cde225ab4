"""What a worker does with one part of a video, and how the parts become one output file.

A part decodes from a keyframe, drops the frames before its warm-up, pushes warm-up, written
frames and look-ahead through a veiler built for its first frame, and encodes only the written
frames, at their original timestamps, into an MP4 file: MP4 keeps the input's time base and
negative decode times (NUT and Matroska do not); only the part's start offset is rounded to
milliseconds by its edit list, and the join puts the exact one back. Every decoded frame's
timestamp is checked against the index the split was planned on: if the decoder disagrees, the
part answers `Mismatch` and the file runs whole.

The join remuxes the parts' packets in order into the output container (no re-encoding), puts
back the rotation, copies the audio packets of the original when asked, and the container tags
with `--keep-metadata`: as the local engine's writer does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veilwatch.errors import CorruptInputError, OutputError
from veilwatch.frames import Frame
from veilwatch.media.atomic import atomic_output
from veilwatch.media.encode import VideoWriter, encoder_for
from veilwatch.media.video import VideoInfo, VideoReader
from veilwatch.pipeline.engine import Engine, output_settings
from veilwatch.pipeline.protocol import JoinJob, PartJob, PartResult
from veilwatch.pipeline.report import StreamReport
from veilwatch.pipeline.stream import veil_stream
from veilwatch.tracking.tracker import Track

PART_FORMAT = "mp4"
# FFmpeg's container format for each joinable output extension (it picks the encoder, as locally).
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "ipod", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}

Progress = Callable[[int, int], None]  # frames written, frames to write


@dataclass(frozen=True)
class Mismatch:
    """The decoder's frames disagree with the index the split was planned on."""

    reason: str


class _IndexMismatchError(Exception):
    """Raised inside a part when a decoded timestamp is not the one the index promised."""


def _first_box(track: Track) -> tuple[float, ...]:
    """A track's first sighting as the frame records round it (its frame's pixels)."""
    box = track.first_seen if track.first_seen is not None else track.boxes[0]
    return tuple(round(float(v), 1) for v in box)


def veil_part(
    engine: Engine, job: PartJob, progress: Progress, on_frame: Callable[[int], None]
) -> PartResult | Mismatch:
    """Veil the written frames of one part into `job.output`; `on_frame(written)` runs after each."""
    settings = output_settings(engine)
    part = job.part
    source = Path(job.source)
    with VideoReader(source) as reader:
        info = reader.info  # the same probe (size, rotation, rate) as the local engine's
    veiler = engine.video_veiler(info.rate, info.width, info.height, first_frame=part.warm_start)
    report = StreamReport(settings.veil, keep_frames=settings.report)
    codec = encoder_for(settings.video.codec, OUTPUT_FORMATS.get(job.output_suffix.lower(), PART_FORMAT))
    video = settings.video.model_copy(update={"codec": codec, "keep_audio": False})

    def done(written: int) -> None:
        on_frame(written)
        progress(written, part.written)

    try:
        with (
            atomic_output(Path(job.output), overwrite=True) as tmp,
            VideoWriter(tmp, info, video, container_format=PART_FORMAT) as writer,
        ):
            written = veil_stream(
                lambda: _frames(source, info, job), veiler, writer.write, report, done, range(part.start, part.end)
            )
    except _IndexMismatchError as exc:
        return Mismatch(str(exc))
    tracks = veiler.tracker.all_tracks() if veiler.tracker is not None else []
    return PartResult(
        part.number,
        written,
        report.faces_found,
        sum(1 for t in tracks if part.start <= t.first < part.end),
        report.longest_tracked_gap(
            tracks,
            within=range(part.start, part.end),
            place=veiler.tracker.image_estimate if veiler.tracker is not None else None,
        ),
        report.frames,
        {t.track_id: (t.first, _first_box(t)) for t in tracks},
    )


def _frames(source: Path, info: VideoInfo, job: PartJob) -> Iterator[Frame]:
    """The frames [warm_start, stop) of the part, upright RGB, numbered as in the whole stream."""
    import av

    part, expected = job.part, job.pts
    steps = round(info.rotation / 90) % 4  # as VideoReader: quarter turns that make it upright
    index = part.warm_start
    with av.open(str(source), mode="r", metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if job.seek_pts is not None:
            container.seek(job.seek_pts, stream=stream, backward=True, any_frame=False)
        try:
            for decoded in container.decode(stream):
                if decoded.pts is not None and decoded.pts < expected[0]:
                    continue  # before the warm-up (or a leading picture of the keyframe)
                position = index - part.warm_start
                if decoded.pts != expected[position]:
                    raise _IndexMismatchError(f"frame {index}: decoded pts {decoded.pts}, index {expected[position]}")
                pixels = np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8)
                if steps:
                    pixels = np.ascontiguousarray(np.rot90(pixels, steps))
                time_base = decoded.time_base or info.time_base
                yield Frame(index, pixels, decoded.pts, time_base, decoded.duration or None)
                index += 1
                if index == part.stop:
                    return
        except (av.error.FFmpegError, OSError, EOFError) as exc:
            raise CorruptInputError(f"damaged video after frame {index} ({exc})", path=str(source)) from exc
    raise _IndexMismatchError(f"decoded {index - part.warm_start} of {part.stop - part.warm_start} frames")


def join_parts(job: JoinJob, keep_audio: bool, keep_metadata: bool) -> None:
    """Concatenate the parts' packets into `job.output`, with the original's rotation, audio and tags."""
    import av

    source = Path(job.source)
    with VideoReader(source) as reader:
        info = reader.info
        audio_template = reader.audio_template() if keep_audio else None
        metadata = reader.container_metadata() if keep_metadata else None
        with atomic_output(Path(job.output), overwrite=True) as tmp:
            out = av.open(str(tmp), mode="w", options={"fflags": "+bitexact"})
            try:
                _remux(out, job, info, audio_template, metadata)
            finally:
                out.close()


def _remux(out: Any, job: JoinJob, info: VideoInfo, audio_template: Any, metadata: dict[str, str] | None) -> None:
    import av

    source = Path(job.source)
    with av.open(job.parts[0]) as first:
        template = first.streams.video[0]
        headers = template.codec_context.extradata
        video = out.add_stream_from_template(template)
    video.time_base = info.time_base
    if info.rotation:
        video.set_display_rotation(info.rotation)
    audio = out.add_stream_from_template(audio_template) if audio_template is not None else None
    if metadata:
        out.metadata.update(metadata)
    for path, first_pts in zip(job.parts, job.first_pts, strict=True):
        with av.open(path) as part:
            stream = part.streams.video[0]
            if stream.codec_context.extradata != headers:
                raise OutputError("the parts were encoded with different codec headers", path=str(source))
            packets = [packet for packet in part.demux(stream) if packet.dts is not None and packet.pts is not None]
            # MP4 keeps a part's start offset as an edit in milliseconds: put back the exact one.
            shift = first_pts - min(int(packet.pts or 0) for packet in packets)
            for packet in packets:
                packet.pts = int(packet.pts or 0) + shift
                packet.dts = int(packet.dts or 0) + shift
                packet.stream = video
                out.mux(packet)
    if audio is not None:
        with av.open(str(source), mode="r", metadata_errors="ignore") as container:
            try:
                for sound in container.demux(container.streams.audio[0]):
                    if sound.dts is None:
                        continue
                    sound.stream = audio
                    out.mux(sound)
            except av.error.FFmpegError as exc:
                raise CorruptInputError(f"damaged audio ({exc})", path=str(source)) from exc
