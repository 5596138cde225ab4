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

import cv2
import numpy as np

from veilwatch.boxes import Detections, FloatArray, clip_boxes, coverage, iou_matrix, scale_boxes
from veilwatch.tracking.motion import IDENTITY, CameraMotion, Matrix, compose, move_boxes

SPEED_MARGIN = 0.5  # extra half-width per frame of prediction, in units of per-frame speed (the speed's error)
MAX_STEP = 0.5  # a face moves at most this many face sizes per frame against the scene (caps bad estimates)
MAX_SIZE_RATE = 0.03  # ... and grows or shrinks by at most this share per frame
MAX_SIZE_CHANGE = 0.2  # ... and a prediction changes its log size by at most this much
MAX_GROWTH = 1.5  # a held box grows at most to this many times its size
DUPLICATE_COVERAGE = 0.6  # a held box this much under a box seen in the frame is the same face
STEADY_SIGHTINGS = 3  # a low-scoring track seen this often is held in full
LOW_SCORE = 0.3  # a track never scoring above this is held for at most a scan period (it is most likely clutter)


@dataclass
class Track:
    """One face followed over frames: its sightings (frame index → box, in scene coordinates) and motion.

    Scene coordinates are frame pixels with the camera's own motion taken out (see
    `FaceTracker`); on a still camera they are frame pixels. The motion is kept as the centre's
    velocity and the rate at which the size changes, never per corner, so that a predicted box
    keeps the shape of a face.
    """

    track_id: int
    shot: tuple[int, int | None] = (0, None)  # frames of the shot it lives in: first, end (exclusive)
    frames: list[int] = field(default_factory=list)
    boxes: list[FloatArray] = field(default_factory=list)
    peak_score: float = 0.0
    velocity: FloatArray = field(default_factory=lambda: np.zeros(2, np.float32))  # centre, px per frame
    size_rate: float = 0.0  # log size change per frame
    first_seen: FloatArray | None = None  # the first sighting's box in its own frame's pixels (as detected)

    @property
    def first(self) -> int:
        """Frame of the first sighting."""
        return self.frames[0]

    @property
    def last(self) -> int:
        """Frame of the latest sighting."""
        return self.frames[-1]

    def add(self, frame: int, box: FloatArray, score: float) -> None:
        """Record a sighting and update the motion estimate."""
        self.peak_score = max(self.peak_score, score)
        if self.frames:
            step, rate = _motion_between(self.boxes[-1], box, max(frame - self.last, 1))
            self.velocity = (0.5 * self.velocity + 0.5 * step).astype(np.float32)
            self.size_rate = 0.5 * self.size_rate + 0.5 * rate
        self.frames.append(frame)
        self.boxes.append(box.astype(np.float32))

    def predict(self, frame: int) -> FloatArray:
        """Box extrapolated from the nearest end of the track along its motion, with a face's shape."""
        if frame >= self.last:
            return _moved(self.boxes[-1], self.velocity, self.size_rate, frame - self.last)
        velocity, rate = self.velocity, self.size_rate
        if len(self.frames) > 1:
            velocity, rate = _motion_between(self.boxes[0], self.boxes[1], max(self.frames[1] - self.first, 1))
        return _moved(self.boxes[0], velocity, rate, frame - self.first)

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


def _motion_between(earlier: FloatArray, later: FloatArray, frames: int) -> tuple[FloatArray, float]:
    """Centre velocity and size rate per frame from one box to another, within a face's limits."""
    size = max(float(earlier[2] - earlier[0]), float(earlier[3] - earlier[1]), 1.0)
    centre = (later[:2] + later[2:] - earlier[:2] - earlier[2:]) / 2
    step = np.clip(centre / frames, -MAX_STEP * size, MAX_STEP * size).astype(np.float32)
    later_size = max(float(later[2] - later[0]), float(later[3] - later[1]), 1.0)
    rate = float(np.clip(np.log(later_size / size) / frames, -MAX_SIZE_RATE, MAX_SIZE_RATE))
    return step, rate


def _moved(box: FloatArray, velocity: FloatArray, size_rate: float, frames: int) -> FloatArray:
    """A box moved `frames` frames (negative: back) along a velocity, its size changed at a rate."""
    centre = (box[:2] + box[2:]) / 2 + velocity * np.float32(frames)
    half = (box[2:] - box[:2]) / 2 * np.float32(np.exp(np.clip(size_rate * frames, -MAX_SIZE_CHANGE, MAX_SIZE_CHANGE)))
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker limits in frames (converted from seconds by the caller, who knows the frame rate)."""

    hold_frames: int
    lookback_frames: int
    memory_frames: int
    growth_per_frame: float
    match_iou: float
    low_score_hold_frames: int = 1 << 30  # hold-over and look-back of tracks that never scored above LOW_SCORE


class FaceTracker:
    """Associates detections with tracks, frame by frame, and estimates held-over face boxes.

    Tracks live in scene coordinates: each frame's pixels mapped through the camera motion
    accumulated since the stream began (`update`'s `motion`), so a held face moves with the
    picture when the camera pans or zooms, and its own velocity is what it does in the scene.
    """

    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self._tracks: list[Track] = []
        self._retired: list[Track] = []
        self._next_id = 0
        self._shot_start = 0
        self._first_frame: int | None = None
        self._to_scene: list[Matrix] = []  # per frame since the first: frame px → scene px

    @property
    def config(self) -> TrackerConfig:
        """The tracker's limits."""
        return self._config

    def update(
        self, frame: int, detections: Detections, *, new_shot: bool = False, motion: CameraMotion | None = None
    ) -> Detections:
        """Assign track ids to one frame's detections (frames must come in increasing order).

        `new_shot` marks a hard cut: every track ends there, and none is veiled across it.
        `motion` is the camera's motion since the previous frame (none or unknown: taken as still).
        """
        self._advance(frame, motion)
        if new_shot:
            for track in self._tracks:
                if track.shot[1] is None:
                    track.shot = (track.shot[0], frame)
            self._shot_start = frame
        self._retired.extend(t for t in self._tracks if frame - t.last > self._config.memory_frames)
        self._tracks = [t for t in self._tracks if frame - t.last <= self._config.memory_frames]
        live = [t for t in self._tracks if t.shot[1] is None]
        scene = self._to_scene_boxes(frame, detections.boxes)
        ids = np.full(len(detections), -1, np.int64)
        if live and len(detections):
            overlap = iou_matrix(scene, self._search_boxes(live, frame))
            for det_i, track_i in _greedy_pairs(overlap, self._config.match_iou):
                live[track_i].add(frame, scene[det_i], float(detections.scores[det_i]))
                ids[det_i] = live[track_i].track_id
        for unmatched in np.flatnonzero(ids < 0):
            track = Track(self._next_id, (self._shot_start, None), first_seen=detections.boxes[unmatched].copy())
            self._next_id += 1
            track.add(frame, scene[unmatched], float(detections.scores[unmatched]))
            self._tracks.append(track)
            ids[unmatched] = track.track_id
        return Detections(detections.boxes, detections.scores, ids)

    def _advance(self, frame: int, motion: CameraMotion | None) -> None:
        """Extend the frame → scene maps to `frame` (frames skipped, and unknown motion, are taken as still)."""
        if self._first_frame is None:
            self._first_frame = frame
        while self._first_frame + len(self._to_scene) < frame:
            self._to_scene.append(self._to_scene[-1] if self._to_scene else IDENTITY)
        if self._first_frame + len(self._to_scene) > frame:
            return
        previous = self._to_scene[-1] if self._to_scene else IDENTITY
        if motion is None or motion.matrix is None or motion.is_still:
            self._to_scene.append(previous)
            return
        back = np.asarray(cv2.invertAffineTransform(motion.matrix), np.float64)  # this frame → the previous
        self._to_scene.append(compose(previous, back))

    def _map(self, frame: int) -> Matrix:
        first = self._first_frame or 0
        index = min(max(frame - first, 0), len(self._to_scene) - 1) if self._to_scene else 0
        return self._to_scene[index] if self._to_scene else IDENTITY

    def _to_scene_boxes(self, frame: int, boxes: FloatArray) -> FloatArray:
        return move_boxes(boxes, self._map(frame)) if len(boxes) else boxes

    def to_frame(self, frame: int, boxes: FloatArray) -> FloatArray:
        """Scene boxes as boxes in the pixels of `frame`."""
        if len(boxes) == 0:
            return boxes
        return move_boxes(boxes, np.asarray(cv2.invertAffineTransform(self._map(frame)), np.float64))

    def image_estimate(self, track: Track, frame: int) -> FloatArray:
        """A track's best box at a frame, in that frame's pixels (for the audit)."""
        box, _ = track.estimate(frame)
        moved: FloatArray = self.to_frame(frame, box[None])[0]
        return moved

    def _search_boxes(self, tracks: list[Track], frame: int) -> FloatArray:
        """Where each track may be now (scene px): its estimate, grown with the frames since a sighting."""
        estimates = [track.estimate(frame) for track in tracks]
        factors = np.asarray(
            [self._growth(box, track, distance) for (box, distance), track in zip(estimates, tracks, strict=True)],
            np.float32,
        )
        return scale_boxes(np.stack([box for box, _ in estimates]), factors)

    def held_boxes(self, frame: int, width: int | None = None, height: int | None = None) -> Detections:
        """Estimated boxes at `frame` (its pixels) of every track not seen in it but close enough to veil.

        Call once the tracker has been updated up to `frame + lookback_frames`, so that tracks
        first seen (or seen again) a little later can be veiled back to this frame. With the
        frame's size, boxes are clipped to it and those wholly outside dropped.
        """
        boxes, ids, factors, seen = [], [], [], []
        for track in self._tracks:
            i = bisect_left(track.frames, frame)
            if i < len(track.frames) and track.frames[i] == frame:
                seen.append(track.boxes[i])
            elif self._veils_at(track, frame, i):
                box, distance = track.estimate(frame)
                boxes.append(box)
                factors.append(self._growth(box, track, distance))
                ids.append(track.track_id)
        if not boxes:
            return Detections()
        estimates = scale_boxes(np.stack(boxes), np.asarray(factors, np.float32))
        if seen:
            # A second track of a face seen in this frame (its box jittered out of the first track's
            # reach once): the detection's veil covers that face already.
            duplicate = coverage(estimates, np.stack(seen)).max(axis=1) >= DUPLICATE_COVERAGE
            keep = ~duplicate
            estimates, ids = estimates[keep], [t for t, k in zip(ids, keep, strict=True) if k]
            if not ids:
                return Detections()
        grown = self.to_frame(frame, estimates)
        held = Detections(grown, np.zeros(len(ids), np.float32), np.asarray(ids, np.int64))
        if width is None or height is None:
            return held
        clipped = clip_boxes(held.boxes, width, height)
        inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        return Detections(clipped, held.scores, held.track_ids).subset(inside)

    def _veils_at(self, track: Track, frame: int, i: int) -> bool:
        """Whether a track is held over (or looked back) to this frame, where it was not seen (`i`: bisect index)."""
        shot_first, shot_end = track.shot
        if frame < shot_first or (shot_end is not None and frame >= shot_end):
            return False
        hold, lookback = self._config.hold_frames, self._config.lookback_frames
        if track.peak_score <= LOW_SCORE and len(track.frames) < STEADY_SIGHTINGS:
            # Doubtful tracks seen once or twice (mostly clutter the detector flickers on) are veiled
            # briefly around their sightings: on facenet's crowd, held and looked back over whole
            # seconds, they veiled a fifth of the picture. A real face, even one that scores low, is
            # sighted again (carried, or found by the motion search) and then held in full.
            hold = min(hold, self._config.low_score_hold_frames)
            lookback = min(lookback, self._config.low_score_hold_frames)
        since = frame - track.frames[i - 1] if i > 0 else None
        until = track.frames[i] - frame if i < len(track.frames) else None
        if since is not None and since <= hold:
            return True
        return until is not None and until <= lookback

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
