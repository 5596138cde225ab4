"""Face tracks: which detections in successive frames are the same face, and where it is between.

Tracking may only ever *add* veils. Every detection is veiled in its own frame whatever the
tracker thinks of it (a published tracking add-on for deface made misses worse because it dropped
unconfirmed detections; we never drop). On top of that, each track yields a box estimate for
frames where the detector missed the face:

- after the last sighting (hold-over): predicted forward at the track's velocity, for up to
  `hold_frames`;
- before the first sighting (look-back, files only): predicted backward, for up to
  `lookback_frames` — a face often becomes detectable only after it has been on screen a while;
- inside a gap between two sightings: interpolated between them.

Each estimate grows with the frames elapsed since the nearest sighting (`growth_per_frame`) and
with the track's speed, because the uncertainty grows. Tracks are remembered for longer than the
hold-over (`memory_frames`), so a face that comes back after a long miss keeps its id and the
gap shows up in the unveiled-run audit instead of being silently split into two tracks.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from veilwatch.boxes import Detections, FloatArray, iou_matrix, scale_boxes

SPEED_MARGIN = 1.0  # extra half-width per frame of prediction, in units of per-frame speed
MAX_STEP = 0.5  # a face moves at most this many box sizes per frame (caps bad velocity estimates)
MAX_GROWTH = 2.0  # a held box grows at most to this many times its size


@dataclass
class Track:
    """One face followed over frames: its sightings (frame index → box) and smoothed velocity."""

    track_id: int
    shot: tuple[int, int | None] = (0, None)  # frames of the shot it lives in: first, end (exclusive)
    frames: list[int] = field(default_factory=list)
    boxes: list[FloatArray] = field(default_factory=list)
    peak_score: float = 0.0
    velocity: FloatArray = field(default_factory=lambda: np.zeros(4, np.float32))

    @property
    def first(self) -> int:
        """Frame of the first sighting."""
        return self.frames[0]

    @property
    def last(self) -> int:
        """Frame of the latest sighting."""
        return self.frames[-1]

    def add(self, frame: int, box: FloatArray, score: float) -> None:
        """Record a sighting and update the velocity (boxes move per frame)."""
        self.peak_score = max(self.peak_score, score)
        if self.frames:
            gap = frame - self.last
            size = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
            step = np.clip((box - self.boxes[-1]) / max(gap, 1), -MAX_STEP * size, MAX_STEP * size)
            self.velocity = (0.5 * self.velocity + 0.5 * step).astype(np.float32)
        self.frames.append(frame)
        self.boxes.append(box.astype(np.float32))

    def predict(self, frame: int) -> FloatArray:
        """Box extrapolated from the nearest end of the track at its velocity."""
        if frame >= self.last:
            ahead: FloatArray = self.boxes[-1] + self.velocity * np.float32(frame - self.last)
            return ahead
        backward = self.velocity
        if len(self.frames) > 1:
            backward = (self.boxes[1] - self.boxes[0]) / np.float32(max(self.frames[1] - self.first, 1))
        behind: FloatArray = self.boxes[0] - backward * np.float32(self.first - frame)
        return behind

    def estimate(self, frame: int) -> tuple[FloatArray, int]:
        """Best box at a frame and the distance (frames) to the nearest sighting."""
        i = bisect_left(self.frames, frame)
        if i < len(self.frames) and self.frames[i] == frame:
            return self.boxes[i], 0
        if 0 < i < len(self.frames):
            f0, f1 = self.frames[i - 1], self.frames[i]
            t = (frame - f0) / (f1 - f0)
            box = self.boxes[i - 1] * (1 - t) + self.boxes[i] * t
            return box.astype(np.float32), min(frame - f0, f1 - frame)
        distance = self.first - frame if i == 0 else frame - self.last
        return self.predict(frame).astype(np.float32), distance


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker limits in frames (converted from seconds by the caller, who knows the frame rate)."""

    hold_frames: int
    lookback_frames: int
    memory_frames: int
    growth_per_frame: float
    match_iou: float


class FaceTracker:
    """Associates detections with tracks, frame by frame, and estimates held-over face boxes."""

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self._tracks: list[Track] = []
        self._retired: list[Track] = []
        self._next_id = 0
        self._shot_start = 0

    def update(self, frame: int, detections: Detections, *, new_shot: bool = False) -> Detections:
        """Assign track ids to one frame's detections (frames must come in increasing order).

        `new_shot` marks a hard cut: every track ends there, and none is veiled across it.
        """
        if new_shot:
            for track in self._tracks:
                if track.shot[1] is None:
                    track.shot = (track.shot[0], frame)
            self._shot_start = frame
        self._retired.extend(t for t in self._tracks if frame - t.last > self._config.memory_frames)
        self._tracks = [t for t in self._tracks if frame - t.last <= self._config.memory_frames]
        live = [t for t in self._tracks if t.shot[1] is None]
        ids = np.full(len(detections), -1, np.int64)
        if live and len(detections):
            predicted = self._search_boxes(live, frame)
            overlap = iou_matrix(detections.boxes, predicted)
            for det_i, track_i in _greedy_pairs(overlap, self._config.match_iou):
                live[track_i].add(frame, detections.boxes[det_i], float(detections.scores[det_i]))
                ids[det_i] = live[track_i].track_id
        for unmatched in np.flatnonzero(ids < 0):
            track = Track(self._next_id, (self._shot_start, None))
            self._next_id += 1
            track.add(frame, detections.boxes[unmatched], float(detections.scores[unmatched]))
            self._tracks.append(track)
            ids[unmatched] = track.track_id
        return Detections(detections.boxes, detections.scores, ids)

    def _search_boxes(self, tracks: list[Track], frame: int) -> FloatArray:
        """Where each track may be now: its estimate, grown with the frames since a sighting."""
        estimates = [track.estimate(frame) for track in tracks]
        distances = np.asarray([distance for _, distance in estimates], np.float32)
        factors = np.minimum(1 + self._config.growth_per_frame * distances, MAX_GROWTH)
        return scale_boxes(np.stack([box for box, _ in estimates]), factors)

    def held_boxes(self, frame: int) -> Detections:
        """Estimated boxes at `frame` of every track not seen in it but close enough to veil.

        Call once the tracker has been updated up to `frame + lookback_frames`, so that tracks
        first seen (or seen again) a little later can be veiled back to this frame.
        """
        boxes, ids, factors = [], [], []
        for track in self._tracks:
            shot_first, shot_end = track.shot
            if frame < shot_first or (shot_end is not None and frame >= shot_end):
                continue
            i = bisect_left(track.frames, frame)
            if i < len(track.frames) and track.frames[i] == frame:
                continue
            since = frame - track.frames[i - 1] if i > 0 else None
            until = track.frames[i] - frame if i < len(track.frames) else None
            held = since is not None and since <= self._config.hold_frames
            looked_back = until is not None and until <= self._config.lookback_frames
            if not (held or looked_back):
                continue
            box, distance = track.estimate(frame)
            boxes.append(box)
            factors.append(self._growth(box, track, distance))
            ids.append(track.track_id)
        if not boxes:
            return Detections()
        grown = scale_boxes(np.stack(boxes), np.asarray(factors, np.float32))
        return Detections(grown, np.zeros(len(boxes), np.float32), np.asarray(ids, np.int64))

    def _growth(self, box: FloatArray, track: Track, distance: int) -> float:
        """How much a held box grows: with the frames since a sighting, and with the speed."""
        size = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
        speed = float(np.abs(track.velocity).max())
        factor = 1 + self._config.growth_per_frame * distance + 2 * SPEED_MARGIN * speed * distance / size
        return min(factor, MAX_GROWTH)

    def all_tracks(self) -> list[Track]:
        """Every track of the stream so far, retired ones included (for the audit)."""
        return self._retired + self._tracks


def _greedy_pairs(overlap: FloatArray, minimum: float) -> list[tuple[int, int]]:
    """Row/column pairs by decreasing overlap, each row and column used once."""
    pairs: list[tuple[int, int]] = []
    if overlap.size == 0:
        return pairs
    order = np.dstack(np.unravel_index(np.argsort(-overlap, axis=None), overlap.shape))[0]
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for row, col in order:
        if overlap[row, col] < minimum:
            break
        if row in used_rows or col in used_cols:
            continue
        pairs.append((int(row), int(col)))
        used_rows.add(int(row))
        used_cols.add(int(col))
    return pairs
