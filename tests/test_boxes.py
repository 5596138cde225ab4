"""Box geometry: tables of known answers, purity, and validation of the Detections type."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.helpers import Box, box_array, iou
from veilwatch.boxes import NO_TRACK, Detections, clip_boxes, coverage, iou_matrix, nms, scale_boxes

A: Box = (0, 0, 10, 10)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (A, A, 1.0),
        (A, (5, 0, 15, 10), 50 / 150),
        (A, (0, 5, 10, 15), 50 / 150),
        (A, (10, 0, 20, 10), 0.0),  # touching edges share no area
        (A, (20, 20, 30, 30), 0.0),
        (A, (2, 2, 8, 8), 36 / 100),  # contained
        (A, (5, 5, 15, 15), 25 / 175),
        (A, (0, 0, 0, 0), 0.0),  # degenerate box
    ],
)
def test_iou_matrix_table(a: Box, b: Box, expected: float) -> None:
    result = iou_matrix(box_array(a), box_array(b))
    assert result.shape == (1, 1)
    assert result.dtype == np.float32
    assert result[0, 0] == pytest.approx(expected, abs=1e-6)
    assert iou_matrix(box_array(b), box_array(a))[0, 0] == pytest.approx(expected, abs=1e-6)


def test_iou_matrix_is_pairwise_and_matches_reference() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (7, 2))
    wh = rng.uniform(1, 40, (7, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    matrix = iou_matrix(boxes[:3], boxes[3:])
    assert matrix.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert matrix[i, j] == pytest.approx(iou(boxes[i].tolist(), boxes[3 + j].tolist()), abs=1e-5)


@pytest.mark.parametrize(("n_a", "n_b"), [(0, 0), (0, 3), (2, 0)])
def test_iou_matrix_and_coverage_of_empty_sets(n_a: int, n_b: int) -> None:
    a = np.tile(box_array(A), (n_a, 1))
    b = np.tile(box_array(A), (n_b, 1))
    assert iou_matrix(a, b).shape == (n_a, n_b)
    assert coverage(a, b).shape == (n_a, n_b)


@pytest.mark.parametrize(
    ("inner", "outer", "expected"),
    [
        (A, A, 1.0),
        ((2, 2, 8, 8), A, 1.0),  # inner fully inside outer
        (A, (2, 2, 8, 8), 0.36),  # only the middle of inner is covered
        (A, (5, 0, 20, 10), 0.5),
        (A, (0, 0, 10, 2.5), 0.25),
        (A, (50, 50, 60, 60), 0.0),
    ],
)
def test_coverage_table(inner: Box, outer: Box, expected: float) -> None:
    assert coverage(box_array(inner), box_array(outer))[0, 0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "expected"),
    [
        ([], [], 0.3, []),
        ([A], [0.5], 0.3, [0]),
        # IoU 1/3: suppressed at 0.3, both kept at 0.5; the better score survives, first
        ([A, (5, 0, 15, 10)], [0.4, 0.9], 0.3, [1]),
        ([A, (5, 0, 15, 10)], [0.4, 0.9], 0.5, [1, 0]),
        ([A, (20, 20, 30, 30), (1, 1, 11, 11)], [0.9, 0.2, 0.8], 0.3, [0, 1]),
        # negative scores and coordinates (boxes poking out of the frame) work too
        ([(-5, -5, 5, 5), (-4, -5, 6, 5)], [-0.5, -0.1], 0.3, [1]),
        # a chain of three: the best suppresses both neighbours ...
        ([(0, 0, 10, 10), (4, 0, 14, 10), (8, 0, 18, 10)], [0.5, 0.9, 0.6], 0.2, [1]),
        # ... but a suppressed middle box suppresses nothing (greedy keeps both ends)
        ([(0, 0, 10, 10), (6, 0, 16, 10), (12, 0, 22, 10)], [0.9, 0.5, 0.8], 0.2, [0, 2]),
    ],
)
def test_nms_table(boxes: list[Box], scores: list[float], threshold: float, expected: list[int]) -> None:
    keep = nms(box_array(*boxes), np.asarray(scores, np.float32), threshold)
    assert keep.dtype == np.int64
    assert keep.tolist() == expected


@pytest.mark.parametrize(
    ("box", "fx", "fy", "expected"),
    [
        ((10, 10, 20, 20), 2.0, None, (5, 5, 25, 25)),
        ((10, 10, 20, 20), 1.0, None, (10, 10, 20, 20)),
        ((10, 10, 20, 30), 0.5, None, (12.5, 15, 17.5, 25)),
        ((0, 0, 10, 20), 1.0, 2.0, (0, -10, 10, 30)),
        ((-10, -10, 10, 10), 1.5, 1.0, (-15, -10, 15, 10)),
    ],
)
def test_scale_boxes_table(box: Box, fx: float, fy: float | None, expected: Box) -> None:
    boxes = box_array(box)
    before = boxes.copy()
    scaled = scale_boxes(boxes, fx, fy)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[0], expected, atol=1e-5)
    np.testing.assert_array_equal(boxes, before)  # pure


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((10, 10, 20, 20), (10, 10, 20, 20)),
        ((-5, -6, 20, 20), (0, 0, 20, 20)),
        ((90, 40, 120, 70), (90, 40, 100, 50)),
        ((-30, -30, -10, -10), (0, 0, 0, 0)),
        ((150, 10, 160, 20), (100, 10, 100, 20)),
    ],
)
def test_clip_boxes_table(box: Box, expected: Box) -> None:
    boxes = box_array(box)
    before = boxes.copy()
    clipped = clip_boxes(boxes, 100, 50)
    np.testing.assert_array_equal(clipped[0], np.asarray(expected, np.float32))
    np.testing.assert_array_equal(boxes, before)  # pure


def test_scale_and_clip_of_no_boxes() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert scale_boxes(empty, 2.0).shape == (0, 4)
    assert clip_boxes(empty, 10, 10).shape == (0, 4)


def test_detections_defaults_and_normalisation() -> None:
    empty = Detections()
    assert len(empty) == 0
    assert empty.boxes.shape == (0, 4)
    found = Detections([[0, 0, 10, 20], [5, 5, 9, 9]], [0.9, 0.4])  # type: ignore[arg-type]  # lists too
    assert found.boxes.dtype == np.float32
    assert found.scores.dtype == np.float32
    assert found.track_ids.tolist() == [NO_TRACK, NO_TRACK]
    np.testing.assert_allclose(found.heights, [20, 4])
    kept = found.subset(found.scores > 0.5)
    assert len(kept) == 1
    assert kept.scores.tolist() == pytest.approx([0.9])
    both = Detections.concat(
        [kept, Detections(box_array((1, 1, 2, 2)), np.asarray([0.3], np.float32), np.asarray([7]))]
    )
    assert both.track_ids.tolist() == [NO_TRACK, 7]
    assert len(Detections.concat([])) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boxes": [[0, 0, 1, 1]], "scores": []}, "one score and one track id per box"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [0.1, 0.2]}, "got 1 boxes"),
        ({"boxes": [[0, 0, 1, 1], [1, 1, 2, 2]], "scores": [0.1, 0.2], "track_ids": [1]}, "1 track ids"),
        ({"boxes": np.zeros((0, 4)), "scores": [0.5]}, "got 0 boxes"),
    ],
)
def test_detections_reject_mismatched_lengths(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


@pytest.mark.parametrize(
    ("boxes", "scores"),
    [(np.zeros((3, 5)), np.zeros(3)), (np.zeros((2, 2)), np.zeros(1))],
    ids=["3x5", "2x2"],
)
def test_detections_reject_boxes_that_are_not_n_by_4(boxes: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> None:
    with pytest.raises(ValueError, match=r"N×4"):
        Detections(boxes, scores)


def test_detections_are_frozen() -> None:
    found = Detections(box_array((0, 0, 1, 1)), np.asarray([0.5], np.float32))
    with pytest.raises(AttributeError):
        found.boxes = np.zeros((0, 4), np.float32)  # type: ignore[misc]
