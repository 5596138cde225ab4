"""An unmasked clip: the veiled recording with the raw pixels of the requested faces put back.

Only faces inside the request's region (all faces, when the request names none) are revealed;
every other face stays veiled, because the veiled recording is the base. The clip is built in
memory and never written to disk: it is handed to the requester for a limited time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from veilwatch.clips.recorded import TimedFrame
from veilwatch.frames import RawRegion
from veilwatch.storage.sealed_faces import FaceChunk

__all__ = ["Region", "reveal"]

MATCH_US = 2_000  # a face frame belongs to the recorded frame within 2 ms of it (the recorder's clock is 1/90000 s)


@dataclass(frozen=True)
class Region:
    """A rectangle of the camera's picture, in output pixels: x0, y0 inclusive; x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    def touches(self, face: RawRegion) -> bool:
        """Whether a face region overlaps this rectangle."""
        across = face.x0 < self.x1 and face.x0 + face.width > self.x0
        return across and face.y0 < self.y1 and face.y0 + face.height > self.y0


def reveal(frames: Iterable[TimedFrame], chunks: Sequence[FaceChunk], region: Region | None) -> Iterator[TimedFrame]:
    """The frames, with the raw pixels of the requested faces pasted back (changed frames are copies)."""
    by_time = sorted(((f.at_us, f.regions) for chunk in chunks for f in chunk.frames), key=lambda item: item[0])
    times = [at_us for at_us, _ in by_time]
    for frame in frames:
        at_us = round(frame.at * 1e6)
        i = bisect.bisect_left(times, at_us - MATCH_US)
        faces: tuple[RawRegion, ...] = ()
        if i < len(times) and abs(times[i] - at_us) <= MATCH_US:
            faces = by_time[i][1]
        wanted = [face for face in faces if region is None or region.touches(face)]
        if not wanted:
            yield frame
            continue
        pixels = frame.pixels.copy()
        height, width = pixels.shape[:2]
        for face in wanted:
            y1, x1 = min(height, face.y0 + face.height), min(width, face.x0 + face.width)
            pixels[face.y0 : y1, face.x0 : x1] = face.pixels[: y1 - face.y0, : x1 - face.x0]
        yield TimedFrame(frame.at, pixels)
