"""The scan pyramid spread over video frames, spending the detector where the picture changes.

Searching every frame of a 1080p video at twice its size (for 8–16 px faces) would cost about a
second per frame on a 2-core CPU. Video is redundant, so:

- the base level (whole frame, shrunk; large and fast faces) is searched in full once per period
  (with the motion search on: `LIVE_BASE_REFRESHES` times; while the camera moves: every
  `MOVING_BASE_REFRESH` frames); on the frames in between, only where the picture changed since
  that search (each changed region grown over the faces found there), and the faces whose
  surroundings are unchanged are carried — every face is in pixels that were searched as they
  are, or is searched afresh; when the changed parts would cost `BASE_PARTIAL_SHARE` of a full
  search, it is searched in full;
- "changed" is measured after taking out the camera's own motion (`veilwatch.tracking.motion`):
  a tile's last search is carried along the pan or zoom, compared blurred, and only what is new
  in view or differs beyond the motion counts; a tile the camera moved is searched again at least
  once per period, since the detector sees each face at a new sub-pixel phase;
- with the motion search on (`motion`), the finest level also searches, on every frame, wherever
  the picture changed since the previous frame (beyond the camera's motion);
- the finer levels' tiles share a budget of network pixels per frame such that every tile is
  searched at least once per scan period (`full_scan_seconds`), oldest first;
- a tile whose pixels have not changed since its last search keeps that search's faces (same
  pixels, same faces), is searched again only after `REFRESH_PERIODS` periods, and gives its
  share of the budget to tiles that did change — on a still camera the fine levels come round
  far more often than once per period;
- a file's first frames need no full search: the tracker's look-back veils back to its start
  the faces the fine levels find during the first period; a live stream has no look-back, so it
  asks for a full search of its first frame (`request_full_scan`), and again for the first frame
  of every new view.

A face that a fine level finds only some frames after it appeared is veiled back to its first
frame by the tracker's look-back (files), which is therefore never shorter than the period.

A file's schedule may also start afresh at every frame whose index is a multiple of
`restart_every` (`Engine.video_veiler` sets `SYNC_PERIODS` periods). Its state then depends only on
the frames since the last such frame, so a part of a file veiled on its own from one of them
(`veilwatch.scale`) finds exactly what the whole run finds. Forgetting is free on a still camera
(unchanged tiles are searched again after `REFRESH_PERIODS` periods anyway), and the tracker's
hold-over, never shorter than a period, covers a face until its tile comes round again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.boxes import Detections, scale_boxes
from veilwatch.detection.scanner import FaceScanner, ScanTile, level_tiles, pyramid_scales
from veilwatch.tracking.motion import (
    IDENTITY,
    SHRINK,
    CameraMotion,
    FrameView,
    Matrix,
    compose,
    move_boxes,
    shrunk_grey,
)

CHANGE_SCALE = SHRINK  # change detection runs on the grey frame shrunk by this factor
CHANGE_GREY_LEVELS = 12  # a shrunk pixel differing by more than this counts as changed
REFRESH_PERIODS = 4  # an unchanged tile is searched again after this many scan periods
MOTION_MAX_FACE_PX = 48.0  # the motion search keeps faces up to this tall in its own (enlarged) pixels
MOTION_MARGIN_PX = 16  # live: the finest level searches around whatever moved, this far around it
UNMOVED_MARGIN = 1.5  # a carried face is kept while this much of its surroundings is unchanged
# The base level is searched in full once per scan period (a live stream, which has no look-back for
# a late find: this many times), in between only where the picture changed; and in full anyway when
# the changed parts would cost this share of a full search.
LIVE_BASE_REFRESHES = 3
BASE_PARTIAL_SHARE = 0.5
# Across a moving camera the base level is searched in full every this many frames: carried findings
# keep veils tight, but a face the detector finds only at some sub-pixel phases needs fresh looks
# (on video_veil_check's pans, every 8 frames left 32-64 px faces unveiled for up to 61 frames).
MOVING_BASE_REFRESH = 1

Grey = npt.NDArray[np.uint8]


_SPECK = np.ones((2, 2), np.uint8)


@dataclass
class _TileState:
    """A tile's last search: the shrunk grey frame it saw, what it found, and how the picture moved since."""

    tile: ScanTile
    last_scan: int | None = None
    view: FrameView | None = None  # the last search's frame: its shrunk grey (and blurred, across a moving camera)
    found: Detections = field(default_factory=Detections)  # in the pixels of that frame
    since: Matrix | None = field(default_factory=IDENTITY.copy)  # that frame → now; None: unknown

    def searched(self, frame: int, view: FrameView, found: Detections) -> None:
        """Record a fresh search of this tile."""
        self.last_scan, self.view, self.found = frame, view, found
        self.since = IDENTITY.copy()

    @property
    def thumb(self) -> Grey | None:
        """The whole shrunk grey frame of the last search."""
        return self.view.grey if self.view is not None else None

    def follow(self, motion: CameraMotion) -> None:
        """Carry the last search along the camera's motion into the next frame."""
        if self.since is None or motion.is_still:
            return
        self.since = None if motion.matrix is None else compose(motion.matrix, self.since)

    @property
    def moved(self) -> bool:
        """Whether the picture moved (or moved unknowably) since the last search."""
        return self.since is None or not np.allclose(self.since, IDENTITY, atol=1e-6)

    def carried(self) -> Detections:
        """The last search's faces where they are now."""
        if not self.moved or self.since is None or len(self.found) == 0:
            return self.found
        return Detections(move_boxes(self.found.boxes, self.since), self.found.scores)


@dataclass(frozen=True)
class ScanStats:
    """What the scheduler did on the latest frame."""

    tiles_scanned: int
    tiles_carried: int
    network_pixels: int
    base_pixels: int  # of network_pixels, those of the base level (in full, or only where the picture changed)


class ScheduledScanner:
    """A stateful detector for one video stream: the full pyramid, amortised over frames."""

    def __init__(
        self,
        scanner: FaceScanner,
        width: int,
        height: int,
        period_frames: int,
        *,
        motion: bool = False,
        motion_every: int = 1,
        first_frame: int = 0,
        restart_every: int | None = None,
        phase: float = 0.0,
    ) -> None:
        """`phase` (0..1) shifts when the costly searches fall, so that streams sharing the cores take turns."""
        self._scanner = scanner
        scales = pyramid_scales(width, height, scanner.settings)
        base = len(scales) - 1
        self._size = (width, height)
        self._motion_scale = scales[0] if motion and base > 0 else None
        self._motion_every = max(1, motion_every)  # the motion search runs on every this many frames
        self._whole = ScanTile(0, 1.0, 0, 0, width, height)
        self._previous = _TileState(self._whole)  # the previous frame, for the motion search
        self._base = level_tiles(base, scales[base], width, height)
        self._base_cost = sum(tile.cost for tile in self._base)
        self._base_state = _TileState(ScanTile(base, scales[base], 0, 0, width, height))  # its last full search
        self._base_refresh = max(1, round(period_frames / LIVE_BASE_REFRESHES) if motion else period_frames)
        self._base_phase = round(phase % 1.0 * self._base_refresh)
        self._moving_base_refresh = MOVING_BASE_REFRESH
        self._tiles = [
            _TileState(tile)
            for level, scale in enumerate(scales[:-1])
            for tile in level_tiles(level, scale, width, height)
        ]
        self.period_frames = max(1, period_frames)
        total = sum(state.tile.cost for state in self._tiles)
        self._budget = total / self.period_frames
        # The look-back (≥ one period) covers faces found during the first period; a phase starts some credit ahead.
        self._credit = phase % 1.0 * total
        self._credit_cap = float(total)
        self._frame = first_frame  # index in the stream of the next frame
        self._restart_every = restart_every
        self._full_next = False
        self.stats = ScanStats(0, 0, 0, 0)

    def request_full_scan(self) -> None:
        """Search every tile of every level on the next frame, whatever the budget."""
        self._full_next = True

    def detect(self, frame: npt.NDArray[np.uint8], view: FrameView | None = None) -> Detections:
        """Faces in this frame: base level fresh, finer levels fresh or carried along the camera's motion.

        Without a `view` (shrunk grey and camera motion), the camera is taken as still.
        """
        if self._restart_every and self._frame % self._restart_every == 0:
            self._restart()
        if view is None:
            view = FrameView(shrunk_grey(frame), CameraMotion.still())
        for state in [self._base_state, self._previous, *self._tiles]:
            state.follow(view.motion)
        parts, base_cost, base_tiles = self._base_level(frame, view, self._base_state)
        motion_cost = 0
        motion_due = self._frame % self._motion_every == 0
        if self._motion_scale is not None and self._previous.thumb is not None and motion_due:
            for x0, y0, x1, y1 in _regions(_changed_pixels(self._previous, view, self._whole), *self._size):
                tile = ScanTile(0, self._motion_scale, x0, y0, x1, y1)
                found = self._scanner.scan(frame, tile, owned=False)
                # Small faces only: larger moving ones are the coarser levels' (searched where the
                # picture changed), and what an enlarged level finds on moving bodies at larger sizes
                # is mostly clutter (on facenet's crowd: veils on coats and bags).
                parts.append(found.subset(found.heights * tile.scale <= MOTION_MAX_FACE_PX))
                motion_cost += tile.cost
        self._previous.searched(self._frame, view, Detections())
        changes = [_changed_pixels(state, view, state.tile) for state in self._tiles]
        changed = [bool(mask.any()) for mask in changes]
        due = self._due(changed)
        carried = 0
        for i, state in enumerate(self._tiles):
            if i in due:
                first = state.last_scan is None and self._frame < self.period_frames
                state.searched(self._frame, view, self._scanner.scan(frame, state.tile, still=first))
                parts.append(state.found)
            elif not changed[i]:
                parts.append(state.carried())
                carried += 1
            else:
                parts.append(_unmoved(state, changes[i]))  # faces whose own pixels did not change
        cost = base_cost + sum(self._tiles[i].tile.cost for i in due) + motion_cost
        self.stats = ScanStats(base_tiles + len(due), carried, cost, base_cost)
        self._frame += 1
        return self._scanner.merge(parts, size=self._size)

    def _base_level(
        self, frame: npt.NDArray[np.uint8], view: FrameView, state: _TileState
    ) -> tuple[list[Detections], int, int]:
        """The base level's faces (raw parts), network cost and tiles searched: in full, or where it changed."""
        regions: list[ScanTile] = []
        # Across a moving camera the detector sees each face at a new sub-pixel phase, and a face it
        # missed may be found at the next: the base level is searched in full more often there.
        refresh = self._base_refresh if not state.moved else self._moving_base_refresh
        due = (self._frame + self._base_phase) % refresh == 0
        full = due or self._full_next or state.thumb is None or state.since is None
        changes = None
        if not full:
            changes = _changed_pixels(state, view, self._whole)
            grown = _grown_over(
                _regions(changes, *self._size), scale_boxes(state.carried().boxes, UNMOVED_MARGIN), *self._size
            )
            regions = [ScanTile(state.tile.level, state.tile.scale, *box) for box in grown]
            full = sum(r.cost for r in regions) > BASE_PARTIAL_SHARE * self._base_cost
        if full or changes is None:
            # The stream's first search of a region gets the stills' lower bar for large faces (a masked
            # face on a still camera may otherwise wait for a better look); only then, not at every
            # restart of the schedule, where it would mostly add clutter.
            first = state.thumb is None and self._frame < self.period_frames
            found = [self._scanner.scan(frame, tile, still=first) for tile in self._base]
            state.searched(self._frame, view, Detections.concat(found))
            return found, self._base_cost, len(self._base)
        parts = [_unmoved(state, changes)]
        parts += [self._scanner.scan(frame, region, owned=False) for region in regions]
        return parts, sum(r.cost for r in regions), 0  # regions, not tiles: seen in the cost alone

    def _restart(self) -> None:
        """Forget every search, as at the start of a stream."""
        self._base_state = _TileState(self._base_state.tile)
        self._previous = _TileState(self._whole)
        self._tiles = [_TileState(state.tile) for state in self._tiles]
        self._credit = 0.0

    def _due(self, changed: list[bool]) -> set[int]:
        """Tiles to search now: changed ones oldest first, then stale unchanged ones, in budget."""
        if self._full_next:
            self._full_next = False  # the budget is not charged: this search is owed, not scheduled
            return set(range(len(self._tiles)))
        self._credit = min(self._credit + self._budget, self._credit_cap + self._budget)
        refresh_after = REFRESH_PERIODS * self.period_frames
        candidates: list[tuple[int, int, int]] = []
        for i, state in enumerate(self._tiles):
            age = self._frame - state.last_scan if state.last_scan is not None else 1 << 30
            if changed[i]:
                candidates.append((0, -age, i))
            elif age >= (self.period_frames if state.moved else refresh_after):
                candidates.append((1, -age, i))
        candidates.sort()
        due: set[int] = set()
        for _, _, i in candidates:
            cost = self._tiles[i].tile.cost
            if cost > self._credit:
                break
            self._credit -= cost
            due.add(i)
        if not candidates:
            self._credit = min(self._credit, self._credit_cap)
        return due


def _regions(moved: npt.NDArray[np.uint8], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes (frame px) around every changed pixel of a shrunk change mask.

    Each is grown by MOTION_MARGIN_PX, so that a face entering it is seen whole, and overlapping
    boxes are merged.
    """
    if not moved.any():
        return []
    grow = 2 * (MOTION_MARGIN_PX // CHANGE_SCALE) + 1
    moved = np.asarray(cv2.dilate(moved, np.ones((grow, grow), np.uint8)), np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(moved, connectivity=8)
    boxes = [
        [int(x) * CHANGE_SCALE, int(y) * CHANGE_SCALE, int(x + w) * CHANGE_SCALE, int(y + h) * CHANGE_SCALE]
        for x, y, w, h, _ in stats[1:count]
    ]
    merged = _merged(boxes)
    return [(max(0, a), max(0, b), min(width, c), min(height, d)) for a, b, c, d in merged]


def _grown_over(
    regions: list[tuple[int, int, int, int]], faces: npt.NDArray[np.float32], width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Regions grown over every face box they touch (so a face is searched whole), merged, within the frame."""
    grown = [list(region) for region in regions]
    for box in grown:
        for x0, y0, x1, y1 in faces.tolist():
            if box[0] < x1 and x0 < box[2] and box[1] < y1 and y0 < box[3]:
                left, top, right, bottom = int(x0), int(y0), math.ceil(x1), math.ceil(y1)
                box[:] = [min(box[0], left), min(box[1], top), max(box[2], right), max(box[3], bottom)]
    merged = _merged(grown) if grown else []
    return [(max(0, a), max(0, b), min(width, c), min(height, d)) for a, b, c, d in merged]


def _merged(boxes: list[list[int]]) -> list[list[int]]:
    """Union of overlapping boxes, repeated until none overlap."""
    result: list[list[int]] = []
    for box in sorted(boxes):
        for other in result:
            if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                other[:] = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3])]
                break
        else:
            result.append(list(box))
    return result if len(result) == len(boxes) else _merged(result)


def _window(tile: ScanTile) -> tuple[int, int, int, int]:
    """A tile's pixels in the shrunk grey frame: x0, y0, x1, y1 (at least one pixel)."""
    s = CHANGE_SCALE
    return tile.x0 // s, tile.y0 // s, max(tile.x0 // s + 1, tile.x1 // s), max(tile.y0 // s + 1, tile.y1 // s)


def _changed_pixels(state: _TileState, view: FrameView, tile: ScanTile) -> npt.NDArray[np.uint8]:
    """1 where the tile's pixels differ from its last search carried along the camera's motion, or are new in view.

    Across a moving camera both pictures are compared blurred (`FrameView.soft`), and changes
    smaller than 2×2 shrunk pixels (8×8 frame px, less than the smallest face) are dropped: what
    remains of resampling is isolated pixels at sharp edges.
    """
    x0, y0, x1, y1 = _window(tile)
    now = view.grey[y0:y1, x0:x1]
    if state.thumb is None or state.view is None or state.since is None or state.thumb.shape != view.grey.shape:
        return np.ones(now.shape, np.uint8)
    if not state.moved:
        return np.asarray(cv2.absdiff(state.thumb[y0:y1, x0:x1], now) > CHANGE_GREY_LEVELS, np.uint8)
    matrix = state.since.copy()
    matrix[:, 2] = matrix[:, 2] / CHANGE_SCALE - (x0, y0)  # last search's shrunk px → this window's
    size = (now.shape[1], now.shape[0])
    before = cv2.warpAffine(state.view.soft, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    seen = cv2.warpAffine(np.ones_like(state.thumb), matrix, size, flags=cv2.INTER_NEAREST, borderValue=0)
    differs = np.asarray(cv2.absdiff(before, view.soft[y0:y1, x0:x1]) > CHANGE_GREY_LEVELS, np.uint8)
    differs = np.asarray(cv2.morphologyEx(differs, cv2.MORPH_OPEN, _SPECK), np.uint8)
    return np.asarray(differs | (seen == 0), np.uint8)


def _unmoved(state: _TileState, changes: npt.NDArray[np.uint8]) -> Detections:
    """The faces of a tile's last search whose surroundings are still as they were then (carried along the motion).

    Motion elsewhere in a tile does not invalidate a face standing still in it.
    """
    if state.thumb is None or len(state.found) == 0 or state.since is None:
        return Detections()
    found = state.carried()
    s, tile = CHANGE_SCALE, state.tile
    height, width = changes.shape
    # Changed pixels, summed over any rectangle in O(1) (crowds carry hundreds of faces).
    moved = cv2.integral(changes)
    boxes = scale_boxes(found.boxes, UNMOVED_MARGIN).astype(np.int64)  # truncated toward zero, like int()
    x0 = np.clip(boxes[:, 0] // s - tile.x0 // s, 0, width)
    y0 = np.clip(boxes[:, 1] // s - tile.y0 // s, 0, height)
    x1 = np.clip(boxes[:, 2] // s - tile.x0 // s + 1, 0, width)
    y1 = np.clip(boxes[:, 3] // s - tile.y0 // s + 1, 0, height)
    changed = moved[y1, x1] - moved[y0, x1] - moved[y1, x0] + moved[y0, x0]
    keep: npt.NDArray[np.bool_] = (x1 > x0) & (y1 > y0) & (changed == 0)
    return found.subset(keep)
