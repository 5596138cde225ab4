"""Multi-scale, tiled face search over a frame.

CenterFace finds faces reliably from about 16 px tall in its input. To find the small faces that
matter for privacy (the median face in our data is 21 px, many are 8–16 px), a frame is searched
at a pyramid of scales: the top level enlarges it until `min_face` becomes ~16 px (at most
`max_upscale`), each lower level halves that, and the bottom level shrinks the frame until its
short side is `BASE_SHORT_SIDE_PX` so that large faces fit the network's receptive field. Levels
are cut into overlapping tiles (`ScanTile`); the overlap exceeds the largest face a level is
responsible for, so no face is cut by every tile. A finer level leaves faces taller than
`FINE_LEVEL_MAX_FACE_PX` (in its own pixels) to the coarser ones. All boxes are merged by
non-maximum suppression, and a face cut by the frame's edge is given a face's width.

Still images get every tile of every level. Video gets the same pyramid spread over frames
(see `veilwatch.detection.schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.boxes import Detections, coverage, nms
from veilwatch.detection.centerface import ALIGN, CenterFace
from veilwatch.settings import DetectorSettings

RELIABLE_FACE_PX = 16.0  # smallest face height CenterFace finds reliably in its own input
BASE_SHORT_SIDE_PX = 360.0  # the bottom level shrinks a frame until its short side is this
TILE_PX = 1024  # largest tile side fed to the network, in network pixels
TILE_OVERLAP_PX = 96  # overlap of neighbouring tiles (network px): more than the faces a fine level finds
# A finer level keeps faces up to this tall (network px). A taller one is at least half as tall at the
# next coarser level, where the network sees it whole; what an enlarged level reports at such sizes
# is mostly clutter blown up (on faces-dev: 0.0008 less over-redaction, no face lost).
FINE_LEVEL_MAX_FACE_PX = 256.0
# Width ÷ height of the detector's boxes on whole faces (the median on faces-dev). A face cut by the
# frame's edge is boxed by its visible part, often much narrower, and its veil would leave the rest
# of the face open; such boxes are widened to this about their centre (then kept within the frame).
FACE_ASPECT = 0.8
EDGE_PX = 2.0  # a box within this distance of the frame's edge belongs to a face the edge may cut
# A large face kept below the threshold (still images, `large_face_factor`) that lies this much inside
# a box above the threshold is a part of that face (an enlarged level fires on a big face's mouth or
# eyes), not a face of its own (on faces-dev: 0.0008 less over-redaction, no face lost).
PART_OF_FACE = 0.3


@dataclass(frozen=True)
class ScanTile:
    """One network pass: a region of the frame (x0, y0, x1, y1 in frame px) seen at a scale."""

    level: int
    scale: float
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def cost(self) -> int:
        """Network input pixels of this pass (what inference time is proportional to)."""
        return _aligned(round((self.x1 - self.x0) * self.scale)) * _aligned(round((self.y1 - self.y0) * self.scale))


def pyramid_scales(width: int, height: int, settings: DetectorSettings) -> list[float]:
    """Scales of the pyramid for a frame of this size, largest first; the last is the base."""
    top = min(settings.max_upscale, max(1.0, RELIABLE_FACE_PX / settings.min_face))
    bottom = min(1.0, BASE_SHORT_SIDE_PX / min(width, height))
    scales = [top]
    while scales[-1] / 2 > bottom * 1.25:
        scales.append(scales[-1] / 2)
    if scales[-1] > bottom * 1.01:
        scales.append(bottom)
    return scales


def _axis(size: int, scale: float) -> tuple[int, list[int]]:
    """Tile length and start offsets (frame px) along one axis of a level.

    As few tiles as fit within TILE_PX network pixels with TILE_OVERLAP_PX overlap, each as short
    as that allows (rounded to the network's 32-px grid), spread evenly: no work on excess overlap.
    """
    net = size * scale
    if net <= TILE_PX:
        return size, [0]
    count = math.ceil((net - TILE_OVERLAP_PX) / (TILE_PX - TILE_OVERLAP_PX))
    tile_net = _aligned(math.ceil((net + (count - 1) * TILE_OVERLAP_PX) / count))
    tile = min(size, math.floor(tile_net / scale))
    step = (size - tile) / (count - 1)
    return tile, [round(i * step) for i in range(count)]


def _aligned(n: int) -> int:
    return max(ALIGN, math.ceil(n / ALIGN) * ALIGN)


def level_tiles(level: int, scale: float, width: int, height: int) -> list[ScanTile]:
    """The tiles covering a whole frame at one scale."""
    tile_w, xs = _axis(width, scale)
    tile_h, ys = _axis(height, scale)
    return [ScanTile(level, scale, x, y, min(width, x + tile_w), min(height, y + tile_h)) for y in ys for x in xs]


def _owned(boxes: npt.NDArray[np.float32], tile: ScanTile, width: int, height: int) -> npt.NDArray[np.bool_]:
    """Boxes centred in the part of the tile it owns: beyond half the overlap from inner edges.

    A face cut by an inner tile edge gives a partial box, which could win suppression over the
    whole box from the neighbouring tile; the neighbour owns that face, so the partial box goes.
    """
    margin = TILE_OVERLAP_PX / tile.scale / 2
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    x0 = tile.x0 + margin if tile.x0 > 0 else -np.inf
    y0 = tile.y0 + margin if tile.y0 > 0 else -np.inf
    x1 = tile.x1 - margin if tile.x1 < width else np.inf
    y1 = tile.y1 - margin if tile.y1 < height else np.inf
    owned: npt.NDArray[np.bool_] = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    return owned


def widen_cut_faces(boxes: npt.NDArray[np.float32], width: int, height: int) -> npt.NDArray[np.float32]:
    """Boxes touching the frame's edge widened to a face's width (FACE_ASPECT × height), within the frame."""
    if len(boxes) == 0:
        return boxes
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    at_edge = (x0 < EDGE_PX) | (y0 < EDGE_PX) | (x1 > width - EDGE_PX) | (y1 > height - EDGE_PX)
    half = np.maximum(x1 - x0, FACE_ASPECT * (y1 - y0)) / 2
    centre = (x0 + x1) / 2
    left = np.where(at_edge, np.clip(centre - half, 0, width), x0)
    right = np.where(at_edge, np.clip(centre + half, 0, width), x1)
    widened: npt.NDArray[np.float32] = np.stack([left, y0, right, y1], axis=1).astype(np.float32)
    return widened


def _parts_of_faces(found: Detections, threshold: float) -> npt.NDArray[np.bool_]:
    """Which detections below the threshold lie PART_OF_FACE or more inside one above it."""
    weak = found.scores <= threshold
    parts = np.zeros(len(found), bool)
    if weak.any() and not weak.all():
        parts[weak] = coverage(found.boxes[weak], found.boxes[~weak]).max(axis=1) >= PART_OF_FACE
    return parts


def full_scan(width: int, height: int, settings: DetectorSettings) -> list[ScanTile]:
    """Every tile of every level for a frame of this size."""
    scales = pyramid_scales(width, height, settings)
    return [tile for level, scale in enumerate(scales) for tile in level_tiles(level, scale, width, height)]


class FaceScanner:
    """Finds faces in RGB frames with a CenterFace network at several scales."""

    def __init__(self, network: CenterFace, settings: DetectorSettings) -> None:
        self._network = network
        self.settings = settings

    def detect(self, frame: npt.NDArray[np.uint8], view: object = None) -> Detections:
        """All faces in an RGB frame, in frame pixels (every tile of every level; a still needs no `view`)."""
        height, width = frame.shape[:2]
        parts = [self.scan(frame, tile, still=True) for tile in full_scan(width, height, self.settings)]
        return self.merge(parts, size=(width, height))

    def scan(
        self, frame: npt.NDArray[np.uint8], tile: ScanTile, *, owned: bool = True, still: bool = False
    ) -> Detections:
        """Raw (unmerged) faces found in one tile, in frame pixels.

        With `owned`, faces centred near an inner edge of a pyramid tile are left to the tile
        that owns them; a free-standing region (owned=False) keeps all it finds. A `still` image
        keeps large faces from `large_face_factor` × threshold: it gets one look, while in a stream
        a large face is in view for many frames and the tracker veils it between its sightings, so
        there a lower bar would mostly add false faces, each held for a second (on the facenet
        clip: 48 % more detections, 9 % more time).
        """
        crop = frame[tile.y0 : tile.y1, tile.x0 : tile.x1]
        crop_w, crop_h = tile.x1 - tile.x0, tile.y1 - tile.y0
        net_w, net_h = max(1, round(crop_w * tile.scale)), max(1, round(crop_h * tile.scale))
        if (net_w, net_h) != (crop_w, crop_h):
            interpolation = cv2.INTER_LINEAR if tile.scale > 1 else cv2.INTER_AREA
            crop = np.asarray(cv2.resize(crop, (net_w, net_h), interpolation=interpolation), np.uint8)
        padded = np.zeros((_aligned(net_h), _aligned(net_w), 3), np.uint8)  # black, as in training
        padded[:net_h, :net_w] = crop
        settings = self.settings
        lowest = settings.threshold * settings.large_face_factor if still else settings.threshold
        found = self._network.run(padded, lowest)
        sx, sy = net_w / crop_w, net_h / crop_h
        scale = np.array([sx, sy, sx, sy], np.float32)
        shift = np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32)
        found = Detections(found.boxes / scale + shift, found.scores)
        heights = found.heights
        keep = found.scores > settings.threshold
        if still:
            keep |= heights >= settings.large_face
        height, width = frame.shape[:2]
        if tile.scale > pyramid_scales(width, height, settings)[-1] * 1.001:  # a finer level than the base
            keep &= heights * tile.scale <= FINE_LEVEL_MAX_FACE_PX
        if owned:
            keep &= _owned(found.boxes, tile, width, height)
        return found.subset(keep)

    def merge(self, parts: Sequence[Detections], *, size: tuple[int, int] | None = None) -> Detections:
        """One box per face from the raw boxes of several tiles.

        With the frame's `size` (width, height), faces cut by its edge are widened (`widen_cut_faces`).
        """
        found = Detections.concat(list(parts))
        if len(found) == 0:
            return found
        merged = found.subset(nms(found.boxes, found.scores, self.settings.nms_iou))
        merged = merged.subset(~_parts_of_faces(merged, self.settings.threshold))
        if self.settings.max_face is not None:
            merged = merged.subset(merged.heights <= self.settings.max_face)
        if size is not None:
            merged = Detections(widen_cut_faces(merged.boxes, *size), merged.scores, merged.track_ids)
        return merged
