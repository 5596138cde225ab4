"""Veils: the face region loses its detail, everything else is untouched, the input is never mutated."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tests.helpers import ASTRONAUT_FACE, Box, Pixels, astronaut, box_array, face_detail, face_frame
from veilwatch.redaction.veils import PixelBox, Veil, pixel_boxes, veil_areas
from veilwatch.settings import VeilMethod, VeilSettings, VeilShape

METHODS: list[VeilMethod] = ["blur", "mosaic", "solid"]
SHAPES: list[VeilShape] = ["box", "ellipse"]


def _outside(image: Pixels, regions: list[PixelBox]) -> npt.NDArray[np.bool_]:
    mask = np.ones(image.shape[:2], bool)
    for r in regions:
        mask[r.y0 : r.y1, r.x0 : r.x1] = False
    return mask


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_veil_hides_the_face_and_nothing_else(method: VeilMethod, shape: VeilShape) -> None:
    image = astronaut()
    original = image.copy()
    veil = Veil(VeilSettings(method=method, shape=shape), seed=0)
    boxes = box_array(ASTRONAUT_FACE)
    out = veil.apply(image, boxes)
    np.testing.assert_array_equal(image, original)  # the caller's array is untouched
    assert out is not image
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    regions = veil.regions(boxes, 512, 512)
    assert len(regions) == 1
    outside = _outside(image, regions)
    np.testing.assert_array_equal(out[outside], original[outside])
    assert face_detail(original, out, ASTRONAUT_FACE) < 0.3
    x0, y0, x1, y1 = (round(v) for v in ASTRONAUT_FACE)
    change = np.abs(out[y0:y1, x0:x1].astype(int) - original[y0:y1, x0:x1].astype(int)).mean()
    assert change > 15
    if shape == "ellipse":  # the corners of the veil region keep their pixels
        r = regions[0]
        for y, x in ((r.y0, r.x0), (r.y0, r.x1 - 1), (r.y1 - 1, r.x0), (r.y1 - 1, r.x1 - 1)):
            np.testing.assert_array_equal(out[y, x], original[y, x])
    else:
        r = regions[0]
        assert np.abs(out[r.y0 : r.y1, r.x0 : r.x1].astype(int) - original[r.y0 : r.y1, r.x0 : r.x1]).mean() > 10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("face_height", [10.0, 16.0, 24.0])
def test_small_faces_are_veiled_as_thoroughly(method: VeilMethod, face_height: float) -> None:
    frame, box = face_frame(160, 120, 60, 40, face_height, seed=3)
    out = Veil(VeilSettings(method=method), seed=1).apply(frame, box_array(box))
    assert face_detail(frame, out, box) < 0.3
    assert face_detail(frame, frame.copy(), box) > 0.99  # the measure itself sees an intact face


def test_a_narrow_veil_over_a_large_face_leaves_no_creases_on_its_edges() -> None:
    # A face cut by the frame's edge, veiled through the box of its visible part (30 × 126 px): the
    # blur keeps 5 cells along it, and enlarging them bilinearly creased the fill at each cell centre,
    # right on the face's strong edges (detail 0.34-0.38 before the cells were smoothed).
    cut = 245
    image = np.ascontiguousarray(astronaut()[:, cut:])
    face = (0.0, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] - cut, ASTRONAUT_FACE[3])
    for seed in range(4):
        out = Veil(VeilSettings(box_drop=0.0), seed=seed).apply(image, box_array(face))
        assert face_detail(image, out, face) < 0.3


def test_solid_uses_its_colour() -> None:
    image = astronaut()
    veil = Veil(VeilSettings(method="solid", color=(255, 0, 128)))
    out = veil.apply(image, box_array(ASTRONAUT_FACE))
    r = veil.regions(box_array(ASTRONAUT_FACE), 512, 512)[0]
    assert (out[r.y0 : r.y1, r.x0 : r.x1] == np.array([255, 0, 128], np.uint8)).all()


def test_apply_in_place_changes_the_given_array() -> None:
    image = astronaut()
    original = image.copy()
    Veil(VeilSettings(), seed=0).apply_in_place(image, box_array(ASTRONAUT_FACE))
    assert face_detail(original, image, ASTRONAUT_FACE) < 0.3


def test_no_boxes_no_change() -> None:
    image = astronaut()
    for method in METHODS:
        out = Veil(VeilSettings(method=method)).apply(image, np.zeros((0, 4), np.float32))
        np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("method", METHODS)
def test_boxes_at_and_beyond_the_edges(method: VeilMethod) -> None:
    image = astronaut()
    veil = Veil(VeilSettings(method=method), seed=0)
    edge: Box = (-40.0, -30.0, 60.0, 80.0)  # pokes out of the top-left corner
    gone: Box = (600.0, 600.0, 700.0, 700.0)  # wholly outside
    out = veil.apply(image, box_array(edge, gone))
    regions = veil.regions(box_array(edge, gone), 512, 512)
    assert len(regions) == 1  # the box wholly outside is dropped
    r = regions[0]
    assert (r.x0, r.y0) == (0, 0)  # clipped, not wrapped round
    assert r.x1 >= 60 and r.y1 >= 80
    outside = _outside(image, regions)
    np.testing.assert_array_equal(out[outside], image[outside])
    assert not np.array_equal(out[:80, :60], image[:80, :60])


def test_overlapping_boxes_are_all_veiled() -> None:
    image = astronaut()
    boxes = box_array(ASTRONAUT_FACE, (200.0, 100.0, 300.0, 220.0))
    out = Veil(VeilSettings(), seed=0).apply(image, boxes)
    assert face_detail(image, out, ASTRONAUT_FACE) < 0.3
    assert face_detail(image, out, (200.0, 100.0, 300.0, 220.0)) < 0.3


@pytest.mark.parametrize(
    ("box", "scale", "drop", "expected"),
    [
        ((10.0, 10.0, 20.0, 20.0), 1.0, 0.0, PixelBox(10, 10, 20, 20)),
        ((10.0, 10.0, 20.0, 20.0), 2.0, 0.0, PixelBox(5, 5, 25, 25)),
        ((10.2, 10.7, 19.1, 19.9), 1.0, 0.0, PixelBox(10, 10, 20, 20)),  # rounded outwards
        ((-10.0, 90.0, 10.0, 110.0), 1.0, 0.0, PixelBox(0, 90, 10, 100)),  # clipped
        ((200.0, 10.0, 210.0, 20.0), 1.0, 0.0, None),  # outside: dropped
        ((10.0, 10.0, 20.0, 30.0), 1.0, 0.1, PixelBox(10, 10, 20, 32)),  # extended down 10 % of 20 px
        ((10.0, 10.0, 20.0, 30.0), 2.0, -0.25, PixelBox(5, 0, 25, 40)),  # extended up, clipped at 0
    ],
)
def test_pixel_boxes_table(box: Box, scale: float, drop: float, expected: PixelBox | None) -> None:
    settings = VeilSettings(box_scale=scale, box_drop=drop)
    result = pixel_boxes(box_array(box), settings, 100, 100)
    assert result == ([] if expected is None else [expected])
    assert Veil(settings).regions(box_array(box), 100, 100) == result


def test_veil_area_is_grown_and_extended_down_as_set() -> None:
    settings = VeilSettings(box_scale=1.5, box_drop=0.1)
    area = veil_areas(box_array((100.0, 100.0, 140.0, 160.0)), settings)[0]
    np.testing.assert_allclose(area, [90.0, 85.0, 150.0, 175.0 + 6.0], atol=1e-4)


def test_veils_are_noisy_so_repeated_veils_differ_but_seeds_repeat() -> None:
    image = astronaut()
    boxes = box_array(ASTRONAUT_FACE)
    a = Veil(VeilSettings(), seed=5).apply(image, boxes)
    b = Veil(VeilSettings(), seed=5).apply(image, boxes)
    c = Veil(VeilSettings(), seed=6).apply(image, boxes)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
