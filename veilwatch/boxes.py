"""Face boxes: the one small type that flows from detection to tracking to redaction.

Boxes are float32 arrays of shape (N, 4) in pixel coordinates of the frame they belong to,
ordered x0, y0, x1, y1 (x1, y1 exclusive). Functions here are pure and never mutate inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

NO_TRACK = -1


def _empty_boxes() -> FloatArray:
    return np.zeros((0, 4), np.float32)


def _empty_scores() -> FloatArray:
    return np.zeros((0,), np.float32)


def _empty_ids() -> IntArray:
    return np.zeros((0,), np.int64)


@dataclass(frozen=True)
class Detections:
    """Face boxes with their detector scores and (once tracked) track ids."""

    boxes: FloatArray = field(default_factory=_empty_boxes)
    scores: FloatArray = field(default_factory=_empty_scores)
    track_ids: IntArray = field(default_factory=_empty_ids)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"Detections boxes must be an N×4 array (x0, y0, x1, y1), got shape {boxes.shape}")
        n = len(boxes)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        ids = np.asarray(self.track_ids, np.int64).reshape(-1)
        if len(ids) == 0 and n:
            ids = np.full(n, NO_TRACK, np.int64)
        if len(scores) != n or len(ids) != n:
            raise ValueError(
                f"Detections need one score and one track id per box: got {n} boxes (N×4), "
                f"{len(scores)} scores, {len(ids)} track ids"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "track_ids", ids)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def heights(self) -> FloatArray:
        """Box heights in pixels."""
        return self.boxes[:, 3] - self.boxes[:, 1]

    def subset(self, keep: npt.NDArray[np.bool_] | IntArray) -> Detections:
        """The detections selected by a boolean mask or index array."""
        return Detections(self.boxes[keep], self.scores[keep], self.track_ids[keep])

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        """All detections of several parts, in order."""
        if not parts:
            return Detections()
        return Detections(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.track_ids for p in parts]),
        )


def iou_matrix(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float32]:
    """Intersection over union of every box in a with every box in b, shape (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    result: npt.NDArray[np.float32] = (inter / np.maximum(union, 1e-6)).astype(np.float32)
    return result


def coverage(inner: FloatArray, outer: FloatArray) -> npt.NDArray[np.float32]:
    """Share of each inner box's area covered by each outer box, shape (len(inner), len(outer))."""
    if len(inner) == 0 or len(outer) == 0:
        return np.zeros((len(inner), len(outer)), np.float32)
    x0 = np.maximum(inner[:, None, 0], outer[None, :, 0])
    y0 = np.maximum(inner[:, None, 1], outer[None, :, 1])
    x1 = np.minimum(inner[:, None, 2], outer[None, :, 2])
    y1 = np.minimum(inner[:, None, 3], outer[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    result: npt.NDArray[np.float32] = (inter / np.maximum(area[:, None], 1e-6)).astype(np.float32)
    return result


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    import cv2  # imported here so that importing boxes stays light

    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    # Scores are shifted to be positive: NMSBoxes drops boxes scoring at or below its threshold.
    positive = (scores - scores.min() + 1.0).tolist()
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), positive, 0.0, iou_threshold)
    return np.asarray(keep, np.int64).reshape(-1)


def scale_boxes(
    boxes: FloatArray, factor_x: float | FloatArray, factor_y: float | FloatArray | None = None
) -> FloatArray:
    """Boxes grown (or shrunk) about their centres by the given factors (one, or one per box)."""
    fy = factor_x if factor_y is None else factor_y
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    hw = (boxes[:, 2] - boxes[:, 0]) * factor_x / 2
    hh = (boxes[:, 3] - boxes[:, 1]) * fy / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)


def clip_boxes(boxes: FloatArray, width: int, height: int) -> FloatArray:
    """Boxes clipped to a width × height frame."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out
