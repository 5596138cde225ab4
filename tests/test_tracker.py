"""Tracking: faces stay veiled through detector misses, before their first detection, never across cuts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers import Box, Pixels, astronaut, box_array, face_detail, moving_face_frames
from veilwatch.boxes import Detections, coverage
from veilwatch.frames import Frame, VeiledFrame
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.veiler import FaceDetector, FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.settings import VeilSettings
from veilwatch.tracking.cuts import CutDetector
from veilwatch.tracking.motion import FrameView
from veilwatch.tracking.tracker import FaceTracker, TrackerConfig


def config(hold: int = 5, lookback: int = 0, memory: int = 20) -> TrackerConfig:
    return TrackerConfig(
        hold_frames=hold, lookback_frames=lookback, memory_frames=memory, growth_per_frame=0.04, match_iou=0.2
    )


def face_at(frame: int, speed: float = 2.0) -> Box:
    x = 20 + speed * frame
    return (x, 30.0, x + 40.0, 80.0)


def seen(frame: int, score: float = 0.9) -> Detections:
    return Detections(box_array(face_at(frame)), np.asarray([score], np.float32))


# --- FaceTracker on its own ----------------------------------------------------------------------


def test_a_one_frame_miss_is_filled_by_the_track() -> None:
    tracker = FaceTracker(config(hold=5))
    ids = []
    for f in range(21):
        found = Detections() if f == 10 else seen(f)
        ids.extend(tracker.update(f, found).track_ids.tolist())
    assert set(ids) == {0}  # one face, one id, across the gap
    held = tracker.held_boxes(10)
    assert len(held) == 1
    assert held.track_ids.tolist() == [0]
    assert coverage(box_array(face_at(10)), held.boxes)[0, 0] >= 0.99
    assert len(tracker.held_boxes(9)) == 0  # seen there: the detection itself is veiled
    assert len(tracker.held_boxes(11)) == 0


def test_without_hold_or_lookback_a_miss_stays_a_miss() -> None:
    tracker = FaceTracker(config(hold=0, lookback=0))
    for f in range(21):
        tracker.update(f, Detections() if f == 10 else seen(f))
    assert len(tracker.held_boxes(10)) == 0


@pytest.mark.parametrize("hold", [1, 5, 12])
def test_hold_over_lasts_hold_frames_and_grows(hold: int) -> None:
    tracker = FaceTracker(config(hold=hold, memory=40))
    for f in range(10):
        tracker.update(f, seen(f))
    for f in range(10, 30):
        tracker.update(f, Detections())
    held_frames = [f for f in range(10, 30) if len(tracker.held_boxes(f))]
    assert held_frames == list(range(10, 10 + hold))
    sizes = [float(np.ptp(tracker.held_boxes(f).boxes[0, [0, 2]])) for f in held_frames]
    assert sizes == sorted(sizes)
    assert sizes[0] > 40  # grown beyond the last seen box
    # the held box follows the motion (the face moves right 2 px/frame)
    first = tracker.held_boxes(10).boxes[0]
    assert coverage(box_array(face_at(10)), first[None])[0, 0] >= 0.99


def test_look_back_veils_frames_before_the_first_detection() -> None:
    tracker = FaceTracker(config(hold=5, lookback=4))
    for f in range(20):
        tracker.update(f, seen(f) if f >= 8 else Detections())
    looked_back = [f for f in range(8) if len(tracker.held_boxes(f))]
    assert looked_back == [4, 5, 6, 7]
    for f in looked_back:
        assert coverage(box_array(face_at(f)), tracker.held_boxes(f).boxes)[0, 0] >= 0.99


def test_two_faces_get_two_tracks_and_each_is_held() -> None:
    tracker = FaceTracker(config(hold=3))
    other: Box = (150.0, 100.0, 190.0, 150.0)
    for f in range(8):
        boxes = [face_at(f), other] if f != 5 else [face_at(f)]
        result = tracker.update(f, Detections(box_array(*boxes), np.full(len(boxes), 0.9, np.float32)))
        assert len(set(result.track_ids.tolist())) == len(boxes)
    held = tracker.held_boxes(5)
    assert held.track_ids.tolist() == [1]
    assert coverage(box_array(other), held.boxes)[0, 0] >= 0.99
    assert len(tracker.all_tracks()) == 2


def test_a_face_back_within_memory_keeps_its_id() -> None:
    tracker = FaceTracker(config(hold=2, memory=30))
    for f in range(5):
        tracker.update(f, Detections(box_array((20, 30, 60, 80)), np.asarray([0.9], np.float32)))
    back = tracker.update(15, Detections(box_array((20, 30, 60, 80)), np.asarray([0.9], np.float32)))
    assert back.track_ids.tolist() == [0]
    assert [f for f in range(5, 15) if len(tracker.held_boxes(f))] == [5, 6]  # held 2 frames only
    assert len(tracker.all_tracks()) == 1  # the long gap is one track (for the audit), not two


def test_a_cut_ends_every_track() -> None:
    tracker = FaceTracker(config(hold=10, lookback=5))
    for f in range(10):
        tracker.update(f, seen(f))
    tracker.update(10, Detections(), new_shot=True)
    for f in range(11, 20):
        tracker.update(
            f,
            Detections(box_array((150, 90, 190, 140)), np.asarray([0.9], np.float32)) if f >= 13 else Detections(),
        )
    assert len(tracker.held_boxes(9)) == 0
    for f in (10, 11, 12):
        # the old face is not carried into the new shot; the new face looks back only to the cut
        held = tracker.held_boxes(f)
        assert 0 not in held.track_ids.tolist()
    assert all(len(tracker.held_boxes(f)) == 1 for f in (10, 11, 12))
    without_cut = FaceTracker(config(hold=10, lookback=5))
    for f in range(11):
        without_cut.update(f, seen(f) if f < 10 else Detections())
    assert 0 in without_cut.held_boxes(10).track_ids.tolist()


def test_a_new_face_after_a_cut_does_not_look_back_across_it() -> None:
    tracker = FaceTracker(config(hold=10, lookback=5))
    for f in range(6):
        tracker.update(f, Detections(), new_shot=f == 3)
    for f in range(6, 10):
        tracker.update(f, seen(f))
    assert [f for f in range(6) if len(tracker.held_boxes(f))] == [3, 4, 5]


# --- cut detection -------------------------------------------------------------------------------


def _other_scene() -> Pixels:
    from skimage import data

    coffee = data.coffee()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(cv2.resize(coffee, (512, 512)), np.uint8)


def test_a_hard_cut_is_detected_once() -> None:
    cuts = CutDetector()
    a, b = astronaut(), _other_scene()
    assert cuts.is_cut(a) is False  # the first frame has nothing to compare with
    assert cuts.is_cut(a) is False
    assert cuts.is_cut(b) is True
    assert cuts.is_cut(b) is False
    assert cuts.is_cut(a) is True


@pytest.mark.parametrize("shift", [2, 6, 12])
def test_a_pan_is_not_a_cut(shift: int) -> None:
    cuts = CutDetector()
    a = astronaut()
    cuts.is_cut(a[:, :400])
    assert cuts.is_cut(a[:, shift : 400 + shift]) is False


def test_a_small_exposure_change_is_not_a_cut() -> None:
    cuts = CutDetector()
    a = astronaut()
    cuts.is_cut(a)
    assert cuts.is_cut(np.clip(a.astype(np.int16) + 10, 0, 255).astype(np.uint8)) is False


# --- end to end with the real detector -----------------------------------------------------------


class BlindedDetector:
    """The real scanner, blinded on chosen frames (calls are counted: one per frame, in order)."""

    def __init__(self, inner: FaceDetector, blind: set[int]) -> None:
        self._inner = inner
        self._blind = blind
        self.calls = 0
        self.found: list[int] = []

    def detect(self, frame: Pixels, view: FrameView | None = None) -> Detections:
        index = self.calls
        self.calls += 1
        found = self._inner.detect(frame, view)
        self.found.append(len(found))
        return Detections() if index in self._blind else found


def _veil_covers(held: Detections, face: Box) -> bool:
    """Whether the veil regions drawn for these held boxes cover the face."""
    regions = Veil(VeilSettings()).regions(held.boxes, 10_000, 10_000)
    veils = box_array(*[(r.x0, r.y0, r.x1, r.y1) for r in regions])
    return bool(len(held)) and float(coverage(box_array(face), veils).max()) >= 0.99


def _run(veiler: FrameVeiler, frames: list[Pixels]) -> list[VeiledFrame]:
    out: list[VeiledFrame] = []
    for i, pixels in enumerate(frames):
        out.extend(veiler.push(Frame(i, pixels)))
    out.extend(veiler.finish())
    return out


@pytest.fixture(scope="module")
def walk() -> list[tuple[Pixels, Box]]:
    return moving_face_frames(21, 192, 144, 48)


def test_blinded_frame_stays_veiled_end_to_end(engine: Engine, walk: list[tuple[Pixels, Box]]) -> None:
    detector = BlindedDetector(engine.scanner, blind={10})
    cfg = engine.tracker_config(25.0, 1, live=True)
    veiler = FrameVeiler(detector, Veil(VeilSettings(), seed=1), FaceTracker(cfg), cfg.lookback_frames)
    out = _run(veiler, [pixels for pixels, _ in walk])
    assert [v.frame.index for v in out] == list(range(21))
    assert all(n >= 1 for n in detector.found)  # the real model sees the face in every frame ...
    assert len(out[10].detections) == 0  # ... but frame 10 was blinded
    assert _veil_covers(out[10].held, walk[10][1])  # held over the face
    for v, (pixels, box) in zip(out, walk, strict=True):
        assert face_detail(pixels, v.frame.pixels, box) < 0.3, v.frame.index
    # Control: the same blinded frame without a tracker leaks the face.
    bare = FrameVeiler(BlindedDetector(engine.scanner, blind={0}), Veil(VeilSettings(), seed=1))
    leaked = _run(bare, [walk[10][0]])
    assert face_detail(walk[10][0], leaked[0].frame.pixels, walk[10][1]) > 0.9


def test_look_back_veils_frames_before_the_first_detection_end_to_end(
    engine: Engine, walk: list[tuple[Pixels, Box]]
) -> None:
    frames = [pixels for pixels, _ in walk[:12]]
    detector = BlindedDetector(engine.scanner, blind={0, 1, 2, 3, 4})
    cfg = engine.tracker_config(25.0, 1, live=False)
    assert cfg.lookback_frames >= 5
    veiler = FrameVeiler(detector, Veil(VeilSettings(), seed=2), FaceTracker(cfg), cfg.lookback_frames)
    assert veiler.push(Frame(0, frames[0])) == []  # a file waits for the look-back
    out = [*_run_from(veiler, frames, 1)]
    assert [v.frame.index for v in out] == list(range(12))
    for i in range(5):
        assert len(out[i].detections) == 0
        assert _veil_covers(out[i].held, walk[i][1])
        assert face_detail(walk[i][0], out[i].frame.pixels, walk[i][1]) < 0.3, i
    # Control: a live stream has no look-back, so the blinded first frames show the face.
    live_cfg = engine.tracker_config(25.0, 1, live=True)
    live = FrameVeiler(
        BlindedDetector(engine.scanner, blind={0, 1, 2, 3, 4}), Veil(VeilSettings()), FaceTracker(live_cfg)
    )
    live_out = _run(live, frames[:7])
    assert face_detail(walk[0][0], live_out[0].frame.pixels, walk[0][1]) > 0.9


def _run_from(veiler: FrameVeiler, frames: list[Pixels], start: int) -> list[VeiledFrame]:
    out: list[VeiledFrame] = []
    for i in range(start, len(frames)):
        out.extend(veiler.push(Frame(i, frames[i])))
    return out + veiler.finish()


def test_no_veil_is_carried_across_a_cut_end_to_end(engine: Engine, walk: list[tuple[Pixels, Box]]) -> None:
    other = np.ascontiguousarray(cv2.resize(_other_scene(), (192, 144)), np.uint8)
    frames = [pixels for pixels, _ in walk[:8]] + [other] * 4
    cfg = engine.tracker_config(25.0, 1, live=True)
    veil = Veil(VeilSettings())
    veiler = FrameVeiler(engine.scanner, veil, FaceTracker(cfg))
    out = _run(veiler, frames)
    assert len(out[7].detections) == 1
    for v in out[8:]:
        assert len(v.held) == 0
        # Nothing is veiled in the new shot but what the detector finds in it (part of the coffee
        # cup scores as a large, low-confidence face).
        found = np.zeros((144, 192), bool)
        for r in veil.regions(v.detections.boxes, 192, 144):
            found[r.y0 : r.y1, r.x0 : r.x1] = True
        changed = (v.frame.pixels != other).any(axis=2)
        assert changed.any() == bool(len(v.detections))
        assert not (changed & ~found).any()
