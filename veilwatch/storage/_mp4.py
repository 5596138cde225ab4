"""Salvaging fragmented MP4 files that a killed process left behind.

A fragmented MP4 is `ftyp`, `moov`, then (`moof`, `mdat`) pairs, one pair per fragment, each
fragment starting at a keyframe. A writer killed mid-fragment leaves a torn box at the end;
cutting the file back to its last whole fragment leaves a file that every player reads.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


@dataclass(frozen=True)
class Probe:
    """What a decodable video file holds."""

    frames: int
    duration_s: float  # from the first frame's start to the last frame's end
    bytes: int


def whole_fragments_length(path: Path) -> int:
    """Length of a fragmented MP4 up to the end of its last whole fragment (0 if none is whole).

    A file without fragments (a plain MP4, or not an MP4 at all) is left to the decoder: its full
    length is returned.
    """
    size = path.stat().st_size
    good = offset = fragments = 0
    pending_moof = seen_moof = False
    with path.open("rb") as file:
        while offset + _HEADER.size <= size:
            file.seek(offset)
            box_size, kind = _HEADER.unpack(file.read(_HEADER.size))
            if box_size == 1:
                box_size = _LARGE.unpack(file.read(_LARGE.size))[0]
            elif box_size == 0:
                box_size = size - offset  # "runs to the end of the file"
            if box_size < _HEADER.size or offset + box_size > size:
                break  # torn (or garbage): nothing after it can be trusted
            offset += box_size
            if kind == b"moof":
                pending_moof = seen_moof = True
            elif kind == b"mdat" and pending_moof:
                pending_moof = False
                fragments += 1
                good = offset
            elif fragments and not pending_moof:
                good = offset  # a whole box after the fragments, such as the closing `mfra` index
    return good if seen_moof else size


def trim_to_whole_fragments(path: Path) -> int:
    """Cut a torn fragment off the end of the file; its new length (0: no whole fragment)."""
    length = whole_fragments_length(path)
    if length != path.stat().st_size:
        with path.open("r+b") as file:
            file.truncate(length)
            os.fsync(file.fileno())
    return length


def probe(path: Path) -> Probe | None:
    """Decode every frame of the file's first video stream; None if none decodes."""
    import av

    frames = 0
    first: float | None = None
    end = 0.0
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if frame.pts is None or frame.time_base is None:
                    continue
                start = float(frame.pts * frame.time_base)
                length = float(frame.duration * frame.time_base) if frame.duration else 0.0
                first = start if first is None else min(first, start)
                end = max(end, start + length)
                frames += 1
    except (av.error.FFmpegError, OSError, EOFError, ValueError):
        # Whatever decoded before the damage still counts; the file is trimmed to whole fragments first.
        pass
    if frames == 0 or first is None:
        return None
    return Probe(frames=frames, duration_s=max(0.0, end - first), bytes=path.stat().st_size)
