"""Where a long video is cut into parts that workers veil on their own, with the whole run's result.

A part writes the frames `[start, end)` and is cut at input keyframes. Around them it pushes
more frames through the veiler than it writes:

- a warm-up `[warm_start, start)`: the tracker needs the faces seen before `start` to hold
  their veils over into it, and to have forgotten the same old tracks as the whole run has
  (`warmup_memories` × the track memory); `warm_start` is a frame where the whole run's scan
  schedule starts afresh too (`VideoTiming.restart_every`), so both runs search the same tiles of
  the same frames and find exactly the same faces;
- a look-ahead `[end, stop)` of `lookback` frames: a face first found just after `end` is veiled
  back into the part's last frames, which are final only once those frames were seen.

Decoding starts at the last keyframe at or before `warm_start` (`seek_frame`); frames before
`warm_start` are decoded and dropped. The keyframes come from the container's packets, read
without decoding. A video whose packets lack timestamps, or that has too few keyframes, is not
split: it runs whole, as on the local engine.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from veilwatch.pipeline.engine import VideoTiming

# Outputs whose container keeps codec headers out of band (global header), so parts remux into one.
JOINABLE_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm"})


@dataclass(frozen=True)
class SplitPolicy:
    """How big parts are: big enough that warm-up stays cheap, small enough to keep workers busy."""

    parts_per_worker: float = 2.0  # aim for this many parts per worker over the whole run
    max_part_seconds: float = 60.0  # no part longer than this
    min_part_warmups: float = 4.0  # no part shorter than this many warm-ups (warm-up costs ≤ 1/4)
    # Warm-up = this many track memories (see module docstring). Two were enough while every face had one
    # track; with the motion search, clutter near a face starts tracks of its own, and which of two
    # overlapping tracks takes a detection depends on older history (tests/test_scale.py failed at 2).
    warmup_memories: float = 4.0


@dataclass(frozen=True)
class VideoIndex:
    """A video stream's frames as its packets say, without decoding."""

    pts: tuple[int, ...]  # presentation timestamps of every frame, in presentation order
    keyframes: tuple[int, ...]  # presentation indices of the keyframes, ascending
    time_base: Fraction
    rate: Fraction

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.pts)


@dataclass(frozen=True)
class Part:
    """One part of a video: the frames it decodes, pushes and writes (indices in the whole stream)."""

    number: int
    seek_frame: int  # decoding starts at this keyframe
    warm_start: int  # first frame pushed through the veiler
    start: int  # first frame written
    end: int  # one past the last frame written
    stop: int  # one past the last frame pushed

    @property
    def written(self) -> int:
        """Frames this part writes."""
        return self.end - self.start


def read_index(path: Path) -> VideoIndex | None:
    """The frame timestamps and keyframes of the first video stream, or None if it cannot be split."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            stamps: list[int] = []
            keys: list[int] = []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's final empty packet
                if packet.pts is None:
                    return None
                stamps.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.append(int(packet.pts))
            time_base = Fraction(stream.time_base or Fraction(1, 90000))
            rate = Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)
    except (av.error.FFmpegError, OSError, EOFError):
        return None  # the whole-file job reports the damage exactly as the local engine does
    ordered = tuple(sorted(stamps))
    if not ordered or len(set(ordered)) != len(ordered):
        return None
    rank = {stamp: i for i, stamp in enumerate(ordered)}
    keyframes = tuple(sorted(rank[k] for k in set(keys)))
    return VideoIndex(ordered, keyframes, time_base, rate)


def warmup_frames(timing: VideoTiming, policy: SplitPolicy) -> int:
    """Frames a part pushes before its first written frame, at least (before rounding to a restart)."""
    return max(1, math.ceil(policy.warmup_memories * timing.memory))


def plan_parts(index: VideoIndex, timing: VideoTiming, target_frames: int, policy: SplitPolicy) -> list[Part]:
    """Parts of about `target_frames` (within the policy's bounds), cut at keyframes; one part if none fits."""
    warmup = warmup_frames(timing, policy)
    restart = timing.restart_every or 1
    shortest = math.ceil(policy.min_part_warmups * warmup)
    length = max(target_frames, shortest)
    starts = [0]
    for key in index.keyframes:
        if key - starts[-1] >= length and index.frames - key >= shortest:
            starts.append(key)
    ends = [*starts[1:], index.frames]
    parts = []
    for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
        warm_start = 0 if start == 0 else max(0, (start - warmup) // restart * restart)
        last = end == index.frames
        stop = index.frames if last else min(index.frames, end + timing.lookback)
        parts.append(Part(number, _keyframe_before(index, warm_start), warm_start, start, end, stop))
    return parts


def target_part_frames(total_seconds: float, workers: int, rate: Fraction, policy: SplitPolicy) -> int:
    """Part length that keeps `workers` busy on `total_seconds` of video, capped by the policy."""
    seconds = min(policy.max_part_seconds, total_seconds / max(1.0, policy.parts_per_worker * workers))
    return max(1, round(seconds * float(rate or 25)))


def _keyframe_before(index: VideoIndex, frame: int) -> int:
    """The last keyframe at or before `frame` (0, the stream's start, if there is none)."""
    i = bisect_right(index.keyframes, frame)
    return index.keyframes[i - 1] if i else 0
