"""The pipeline's glue: engine limits, the frame veiler failing closed, the audit, the thread stages."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from fractions import Fraction
from typing import cast

import numpy as np
import pytest

from tests.helpers import Pixels, box_array, face_detail, face_frame
from veilwatch.boxes import Detections
from veilwatch.frames import Frame, VeiledFrame
from veilwatch.pipeline.engine import DEFAULT_FPS, Engine
from veilwatch.pipeline.report import StreamReport
from veilwatch.pipeline.threads import BackgroundConsumer, prefetch
from veilwatch.pipeline.veiler import FaceDetector, FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.settings import AnonymizeSettings, TrackerSettings, VeilSettings
from veilwatch.tracking.motion import FrameView
from veilwatch.tracking.tracker import Track

# --- engine --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "period"), [(25.0, 1), (25.0, 13), (60.0, 30), (5.0, 3)])
def test_tracker_limits_always_span_a_scan_period(engine: Engine, fps: float, period: int) -> None:
    files = engine.tracker_config(fps, period, live=False)
    live = engine.tracker_config(fps, period, live=True)
    assert files.hold_frames == max(round(1.0 * fps), period)
    assert files.lookback_frames == max(round(2.0 * fps), period)
    assert live.lookback_frames == 0
    assert live.hold_frames == files.hold_frames
    assert files.memory_frames >= files.hold_frames + files.lookback_frames


def test_zero_hold_setting_still_holds_for_a_period() -> None:
    settings = AnonymizeSettings(tracker=TrackerSettings(hold_seconds=0, lookback_seconds=0))
    config = Engine(settings).tracker_config(25.0, 4, live=False)
    assert config.hold_frames == 4
    assert config.lookback_frames == 4


def test_video_veiler_without_a_frame_rate_assumes_the_default(engine: Engine) -> None:
    veiler = engine.video_veiler(Fraction(0), 160, 120)
    assert veiler.tracker is not None
    frame, box = face_frame(160, 120, 40, 20, 40, seed=1)
    out: list[VeiledFrame] = []
    for i in range(3):
        out.extend(veiler.push(Frame(i, frame, i, Fraction(1, int(DEFAULT_FPS)))))
    out.extend(veiler.finish())
    assert [v.frame.index for v in out] == [0, 1, 2]
    assert out[1].frame.seconds == pytest.approx(0.04)
    assert all(face_detail(frame, v.frame.pixels, box) < 0.3 for v in out)


def test_image_veiler_veils_at_once(engine: Engine) -> None:
    frame, box = face_frame(200, 160, 60, 30, 50, seed=2)
    veiler = engine.image_veiler()
    assert veiler.tracker is None
    out = veiler.push(Frame(0, frame))
    assert len(out) == 1
    assert len(out[0].detections) == 1
    assert face_detail(frame, out[0].frame.pixels, box) < 0.3
    assert veiler.finish() == []


# --- failing closed ------------------------------------------------------------------------------


class FailingDetector:
    """A real detector whose frame `fail_at` cannot be processed (raises, as a broken runtime would)."""

    def __init__(self, inner: FaceDetector, fail_at: int) -> None:
        self._inner = inner
        self._fail_at = fail_at
        self.calls = 0

    def detect(self, frame: Pixels, view: FrameView | None = None) -> Detections:
        index = self.calls
        self.calls += 1
        if index == self._fail_at:
            raise RuntimeError("inference failed")
        return self._inner.detect(frame, view)


def test_a_detector_failure_withholds_the_frame(engine: Engine) -> None:
    frame, _ = face_frame(160, 120, 40, 20, 40, seed=3)
    cfg = engine.tracker_config(25.0, 1, live=False)
    veiler = engine.video_veiler(Fraction(25), 160, 120)
    failing = FrameVeiler(
        FailingDetector(engine.scanner, fail_at=2), Veil(VeilSettings()), veiler.tracker, cfg.lookback_frames
    )
    released: list[VeiledFrame] = []
    for i in range(2):
        released.extend(failing.push(Frame(i, frame)))
    with pytest.raises(RuntimeError, match="inference failed"):
        failing.push(Frame(2, frame))
    assert released == []  # nothing unveiled or half-veiled escaped before the failure


def test_frames_must_be_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        Frame(0, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        Frame(0, np.zeros((4, 4, 3), np.float32))
    assert Frame(0, np.zeros((4, 6, 3), np.uint8)).seconds is None


# --- the unveiled-run audit ----------------------------------------------------------------------


def _track(frames: list[int], score: float) -> Track:
    track = Track(0)
    for f in frames:
        track.add(f, np.asarray([10 + f, 10, 30 + f, 40], np.float32), score)
    return track


def _veiled(index: int, boxes: list[tuple[float, float, float, float]]) -> VeiledFrame:
    detections = Detections(box_array(*boxes), np.ones(len(boxes), np.float32))
    return VeiledFrame(Frame(index, np.zeros((60, 80, 3), np.uint8)), detections)


def test_audit_counts_the_longest_run_of_uncovered_frames() -> None:
    report = StreamReport(VeilSettings(box_scale=1.4, box_drop=0.0), keep_frames=True)
    for i in range(12):
        boxes = [] if i in (4, 5, 6, 9) else [(10.0 + i, 10.0, 30.0 + i, 40.0)]
        report.add(_veiled(i, boxes))
    assert report.faces_found == 8
    assert report.longest_tracked_gap([_track([0, 1, 2, 3, 7, 8, 10, 11], 0.9)]) == 3
    assert report.longest_tracked_gap([_track([0, 11], 0.3)]) == 0  # never confident: not audited
    assert len(report.frames) == 12
    assert report.frames[4]["faces"] == []


def test_audit_counts_a_veil_too_small_as_uncovered() -> None:
    report = StreamReport(VeilSettings(box_scale=1.0, box_drop=0.0), keep_frames=False)
    for i in range(5):
        report.add(_veiled(i, [(10.0 + i, 10.0, 20.0 + i, 25.0)]))  # covers only part of the face
    assert report.longest_tracked_gap([_track([0, 4], 0.9)]) == 5
    assert report.frames == []


# --- thread stages -------------------------------------------------------------------------------


def test_prefetch_keeps_order_and_hands_over_errors() -> None:
    assert list(prefetch(lambda: iter(range(50)), 4, "t")) == list(range(50))

    def broken() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    got: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        got.extend(prefetch(broken, 2, "t"))
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    stream = cast(Generator[int, None, None], prefetch(endless, 2, "endless-producer"))
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "endless-producer" for t in threading.enumerate())


def test_background_consumer_consumes_everything_and_reports_failures() -> None:
    seen: list[int] = []
    consumer: BackgroundConsumer[int] = BackgroundConsumer(seen.append, 2, "c")
    for i in range(20):
        consumer.put(i)
    consumer.close()
    assert seen == list(range(20))

    def picky(item: int) -> None:
        if item == 3:
            raise ValueError("cannot encode 3")

    failing: BackgroundConsumer[int] = BackgroundConsumer(picky, 2, "c")
    with pytest.raises(ValueError, match="cannot encode 3"):
        for i in range(100):
            failing.put(i)
        failing.close()
    aborted: BackgroundConsumer[int] = BackgroundConsumer(lambda item: time.sleep(0.01), 1, "c")
    aborted.put(1)
    aborted.abort()  # no error of its own, no hang
