"""The scan pyramid spread over video frames, spending the detector where the picture changes.

Searching every frame of a 1080p video at twice its size (for 8–16 px faces) would cost about a
second per frame on a 2-core CPU. Video is redundant, so:

- the base level (whole frame, shrunk; large and fast faces) is searched in full once per period
  (a live stream: `LIVE_BASE_REFRESHES` times); on the frames in between, only where the picture
  changed since that search (each changed region grown over the faces found there), and the faces
  whose surroundings are unchanged are carried — every face is in pixels that were searched as
  they are, or is searched afresh; when the changed parts would cost `BASE_PARTIAL_SHARE` of a
  full search, it is searched in full (a moving camera: on every frame);
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

CHANGE_SCALE = 4  # change detection runs on the grey frame shrunk by this factor
CHANGE_GREY_LEVELS = 12  # a shrunk pixel differing by more than this counts as changed
REFRESH_PERIODS = 4  # an unchanged tile is searched again after this many scan periods
MOTION_MARGIN_PX = 16  # live: the finest level searches around whatever moved, this far around it
UNMOVED_MARGIN = 1.5  # a carried face is kept while this much of its surroundings is unchanged
# The base level is searched in full once per scan period (a live stream, which has no look-back for
# a late find: this many times), in between only where the picture changed; and in full anyway when
# the changed parts would cost this share of a full search.
LIVE_BASE_REFRESHES = 3
BASE_PARTIAL_SHARE = 0.5

Grey = npt.NDArray[np.uint8]


@dataclass
class _TileState:
    tile: ScanTile
    last_scan: int | None = None
    thumb: Grey | None = None
    found: Detections = field(default_factory=Detections)


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
        self._previous: Grey | None = None
        self._base = level_tiles(base, scales[base], width, height)
        self._base_cost = sum(tile.cost for tile in self._base)
        self._base_state = _TileState(ScanTile(base, scales[base], 0, 0, width, height))  # its last full search
        self._base_refresh = max(1, round(period_frames / LIVE_BASE_REFRESHES) if motion else period_frames)
        self._base_phase = round(phase % 1.0 * self._base_refresh)
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

    def detect(self, frame: npt.NDArray[np.uint8]) -> Detections:
        """Faces in this frame: base level fresh, finer levels fresh or carried over."""
        if self._restart_every and self._frame % self._restart_every == 0:
            self._restart()
        grey = _shrunk_grey(frame)
        parts, base_cost, base_tiles = self._base_level(frame, grey, self._base_state)
        motion_cost = 0
        if self._motion_scale is not None and self._previous is not None:
            for x0, y0, x1, y1 in motion_regions(self._previous, grey, *self._size):
                tile = ScanTile(0, self._motion_scale, x0, y0, x1, y1)
                parts.append(self._scanner.scan(frame, tile, owned=False))
                motion_cost += tile.cost
        self._previous = grey
        changed = [_changed(state, grey) for state in self._tiles]
        due = self._due(changed)
        carried = 0
        for i, state in enumerate(self._tiles):
            if i in due:
                state.found = self._scanner.scan(frame, state.tile)
                state.last_scan = self._frame
                state.thumb = _thumb(grey, state.tile).copy()
                parts.append(state.found)
            elif not changed[i]:
                parts.append(state.found)
                carried += 1
            else:
                parts.append(_unmoved(state, grey))  # faces whose own pixels did not change
        cost = base_cost + sum(self._tiles[i].tile.cost for i in due) + motion_cost
        self.stats = ScanStats(base_tiles + len(due), carried, cost, base_cost)
        self._frame += 1
        return self._scanner.merge(parts, size=self._size)

    def _base_level(
        self, frame: npt.NDArray[np.uint8], grey: Grey, state: _TileState
    ) -> tuple[list[Detections], int, int]:
        """The base level's faces (raw parts), network cost and tiles searched: in full, or where it changed."""
        regions: list[ScanTile] = []
        due = (self._frame + self._base_phase) % self._base_refresh == 0
        full = due or self._full_next or state.thumb is None
        if not full and state.thumb is not None:
            changed = motion_regions(state.thumb, grey, *self._size)
            grown = _grown_over(changed, scale_boxes(state.found.boxes, UNMOVED_MARGIN), *self._size)
            regions = [ScanTile(state.tile.level, state.tile.scale, *box) for box in grown]
            full = sum(r.cost for r in regions) > BASE_PARTIAL_SHARE * self._base_cost
        if full:
            found = [self._scanner.scan(frame, tile) for tile in self._base]
            state.found, state.thumb = Detections.concat(found), grey.copy()
            return found, self._base_cost, len(self._base)
        parts = [_unmoved(state, grey)]
        parts += [self._scanner.scan(frame, region, owned=False) for region in regions]
        return parts, sum(r.cost for r in regions), 0  # regions, not tiles: seen in the cost alone

    def _restart(self) -> None:
        """Forget every search, as at the start of a stream."""
        self._base_state = _TileState(self._base_state.tile)
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
            elif age >= refresh_after:
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


def motion_regions(previous: Grey, current: Grey, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes (frame px) around every part of the picture that changed since the previous frame.

    Each is grown by MOTION_MARGIN_PX, so that a face entering it is seen whole, and overlapping
    boxes are merged.
    """
    moved = np.asarray(cv2.absdiff(previous, current) > CHANGE_GREY_LEVELS, np.uint8)
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


def _shrunk_grey(frame: npt.NDArray[np.uint8]) -> Grey:
    height, width = frame.shape[:2]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    size = (max(1, width // CHANGE_SCALE), max(1, height // CHANGE_SCALE))
    return np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.uint8)


def _thumb(grey: Grey, tile: ScanTile) -> Grey:
    s = CHANGE_SCALE
    return grey[tile.y0 // s : max(tile.y0 // s + 1, tile.y1 // s), tile.x0 // s : max(tile.x0 // s + 1, tile.x1 // s)]


def _unmoved(state: _TileState, grey: Grey) -> Detections:
    """The faces of a tile's last search whose surroundings are still as they were then.

    Motion elsewhere in a tile does not invalidate a face standing still in it.
    """
    if state.thumb is None or len(state.found) == 0:
        return Detections()
    now = _thumb(grey, state.tile)
    if now.shape != state.thumb.shape:
        return Detections()
    s, tile = CHANGE_SCALE, state.tile
    height, width = now.shape
    # Changed thumbnail pixels, summed over any rectangle in O(1) (crowds carry hundreds of faces).
    moved = cv2.integral(np.asarray(cv2.absdiff(state.thumb, now) > CHANGE_GREY_LEVELS, np.uint8))
    boxes = scale_boxes(state.found.boxes, UNMOVED_MARGIN).astype(np.int64)  # truncated toward zero, like int()
    x0 = np.clip(boxes[:, 0] // s - tile.x0 // s, 0, width)
    y0 = np.clip(boxes[:, 1] // s - tile.y0 // s, 0, height)
    x1 = np.clip(boxes[:, 2] // s - tile.x0 // s + 1, 0, width)
    y1 = np.clip(boxes[:, 3] // s - tile.y0 // s + 1, 0, height)
    changed = moved[y1, x1] - moved[y0, x1] - moved[y1, x0] + moved[y0, x0]
    keep: npt.NDArray[np.bool_] = (x1 > x0) & (y1 > y0) & (changed == 0)
    return state.found.subset(keep)


def _changed(state: _TileState, grey: Grey) -> bool:
    if state.thumb is None:
        return True
    now = _thumb(grey, state.tile)
    if now.shape != state.thumb.shape:
        return True
    diff = cv2.absdiff(now, state.thumb)
    return bool(diff.max() > CHANGE_GREY_LEVELS)
