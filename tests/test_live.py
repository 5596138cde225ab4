"""The live room's parts: PTZ views, turn-taking, presence, and the per-camera pipeline — run with the
real model, real threads and the synthetic walkers camera, checking every face in what is published."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import pytest

from tests.helpers import face_detail, iou
from veilwatch.boxes import Detections
from veilwatch.detection.scanner import FaceScanner, full_scan
from veilwatch.detection.schedule import ScanStats, ScheduledScanner
from veilwatch.frames import Image
from veilwatch.live.control import ControlDesk, ControlEvent
from veilwatch.live.pipeline import (
    CameraPipeline,
    CameraStats,
    PublishedFrame,
    RawFacePixels,
    VeiledOutput,
    VeilerFactory,
    engine_veilers,
)
from veilwatch.live.presence import Presence
from veilwatch.live.ptz import PTZView, view_pixels
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.veiler import FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.settings import AnonymizeSettings, DetectorSettings, LiveSettings
from veilwatch.sources.camera import DemoSource, SourceState, open_source
from veilwatch.tracking.motion import FrameView
from veilwatch.tracking.tracker import FaceTracker

W, H = 640, 360
VEILED = 0.3  # veil_check.py: a face whose detail correlation is below this is veiled


@pytest.fixture(scope="module")
def live_engine() -> Engine:
    """The real engine as the live room builds it: one inference thread, shared by cameras."""
    return Engine(AnonymizeSettings(detector=DetectorSettings(min_face=12, threads=1)))


# --- builders ------------------------------------------------------------------------------------


def scanner_veilers(engine: Engine, make: Callable[[FaceScanner, int, int, int], ScheduledScanner]) -> VeilerFactory:
    """Live veilers like Engine.video_veiler(live=True), around a scanner of the test's making."""

    def build(width: int, height: int, fps: float) -> FrameVeiler:
        period = max(1, round(engine.settings.detector.full_scan_seconds * fps))
        config = engine.tracker_config(fps, period, live=True)
        return FrameVeiler(make(engine.scanner, width, height, period), Veil(engine.settings.veil), FaceTracker(config))

    return build


class CrashingScanner(ScheduledScanner):
    """The real scanner, which crashes on every frame after the first `crash_after`."""

    def __init__(self, scanner: FaceScanner, width: int, height: int, period: int, crash_after: int) -> None:
        super().__init__(scanner, width, height, period)
        self.crash_after, self.calls = crash_after, 0

    def detect(self, frame: Image, view: FrameView | None = None) -> Detections:
        self.calls += 1
        if self.calls > self.crash_after:
            raise RuntimeError("detector crashed")
        return super().detect(frame, view)


class SlowScanner(ScheduledScanner):
    """The real scanner on a machine far too slow for it."""

    def detect(self, frame: Image, view: FrameView | None = None) -> Detections:
        time.sleep(0.4)
        return super().detect(frame, view)


class RecordingScanner(ScheduledScanner):
    """The real scanner, keeping what it searched on every frame."""

    def __init__(self, scanner: FaceScanner, width: int, height: int, period: int) -> None:
        super().__init__(scanner, width, height, period)
        self.history: list[ScanStats] = []

    def detect(self, frame: Image, view: FrameView | None = None) -> Detections:
        found = super().detect(frame, view)
        self.history.append(self.stats)
        return found


def collect(pipeline: CameraPipeline, seconds: float, until: Callable[[], bool] | None = None) -> list[PublishedFrame]:
    """Follow the stream like a viewer for `seconds` (or until `until()` holds)."""
    frames: list[PublishedFrame] = []
    end = time.monotonic() + seconds
    seq = -1
    while time.monotonic() < end and not (until and until()):
        published = pipeline.wait_next(seq, 0.5)
        if published is not None:
            frames.append(published)
            seq = published.seq
    return frames


def decode(jpeg: bytes) -> Image:
    """A JPEG as RGB pixels."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "not a JPEG"
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


def assert_faces_veiled(demo: DemoSource, frame: PublishedFrame) -> None:
    """Every ground-truth face of the frame's source picture is veiled in the published JPEG."""
    shown, raw = decode(frame.jpeg), demo.frame(frame.source_seq)
    for box in demo.ground_truth(frame.source_seq):
        detail = face_detail(raw, shown, box)
        assert detail < VEILED, f"face {box} of source frame {frame.source_seq} shown (detail {detail:.2f})"


def settings(**changes: Any) -> LiveSettings:
    """Live settings for the 640 × 360 test camera, with a deadline that tolerates a busy test machine."""
    values: dict[str, Any] = {"width": W, "height": H, "fps": 10.0, "deadline_s": 3.0, "restart_backoff_s": 0.3}
    values.update(changes)
    return LiveSettings(**values)


# --- PTZ -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "size", "aspect", "crop"),
    [
        (PTZView(), (1280, 720), None, (0, 0, 1280, 720)),
        (PTZView(pan=1, tilt=-1), (1280, 720), None, (0, 0, 1280, 720)),  # nowhere to move at zoom 1
        (PTZView(zoom=2), (1280, 720), None, (320, 180, 960, 540)),
        (PTZView(zoom=2, pan=-1, tilt=-1), (1280, 720), None, (0, 0, 640, 360)),
        (PTZView(zoom=2, pan=1, tilt=1), (1280, 720), None, (640, 360, 1280, 720)),
        (PTZView(zoom=8, pan=0.5), (1280, 720), None, (840, 315, 1000, 405)),
        (PTZView(), (640, 480), 16 / 9, (0, 60, 640, 420)),  # a 4:3 camera shown 16:9
        (PTZView(tilt=1), (640, 480), 16 / 9, (0, 120, 640, 480)),
        (PTZView(pan=-1), (1920, 1080), 4 / 3, (0, 0, 1440, 1080)),
    ],
)
def test_ptz_crop(view: PTZView, size: tuple[int, int], aspect: float | None, crop: tuple[int, int, int, int]) -> None:
    assert view.crop(*size, aspect) == crop


def test_ptz_moves_are_clamped() -> None:
    view = PTZView().moved(dpan=0.7, dtilt=-0.4, dzoom=2)
    assert view == PTZView(zoom=3, pan=0.7, tilt=-0.4)
    assert view.moved(dpan=5, dtilt=-5, dzoom=50) == PTZView(zoom=8, pan=1, tilt=-1)
    assert view.moved(dzoom=-50) == PTZView(zoom=1, pan=0.7, tilt=-0.4)
    for bad in ({"zoom": 0.5}, {"zoom": 9}, {"pan": 1.5}, {"tilt": -2}, {"pan": float("nan")}):
        with pytest.raises(ValueError, match="PTZ view"):
            PTZView(**bad)


def test_view_pixels_cut_then_resize() -> None:
    source = np.arange(720 * 1280 * 3, dtype=np.uint32).reshape(720, 1280, 3).astype(np.uint8)
    assert np.array_equal(view_pixels(source, PTZView(), 1280, 720), source)
    zoomed = view_pixels(source, PTZView(zoom=2, pan=-1, tilt=-1), 640, 360)
    assert np.array_equal(zoomed, source[:360, :640])
    assert view_pixels(source, PTZView(zoom=4), 1280, 720).shape == (720, 1280, 3)


# --- turn-taking ---------------------------------------------------------------------------------


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def desk_with_log(lease_s: float = 30.0) -> tuple[ControlDesk, FakeClock, list[ControlEvent]]:
    clock, events = FakeClock(), list[ControlEvent]()
    desk = ControlDesk(lease_s, clock, events.append, wall_clock=clock)
    return desk, clock, events


def test_lease_queue_and_release() -> None:
    desk, clock, events = desk_with_log()
    state = desk.request("lobby", "ana", "visitor")
    assert (state.holder, state.remaining_s, state.queue) == ("ana", 30.0, ())
    assert desk.request("lobby", "ben", "visitor").queue == ("ben",)
    assert desk.request("lobby", "cy", "operator").queue == ("ben", "cy")
    assert desk.request("lobby", "ben", "visitor").queue == ("ben", "cy")  # asking twice changes nothing
    assert desk.may_steer("lobby", "ana") and not desk.may_steer("lobby", "ben")
    assert desk.holder("hall") is None  # cameras are independent
    clock.now += 10
    assert desk.state("lobby").remaining_s == pytest.approx(20)
    state = desk.release("lobby", "ana", "visitor")
    assert (state.holder, state.queue, state.remaining_s) == ("ben", ("cy",), 30.0)
    desk.release("lobby", "cy", "operator")  # leaves the queue
    assert desk.state("lobby").queue == ()
    desk.release("lobby", "nobody", "visitor")  # not there: nothing happens
    kinds = [(e.kind, e.actor) for e in events]
    assert kinds == [
        ("granted", "ana"),
        ("queued", "ben"),
        ("queued", "cy"),
        ("released", "ana"),
        ("granted", "ben"),
        ("left", "cy"),
    ]
    assert all(e.camera == "lobby" for e in events)
    assert events[1].role == "visitor" and events[2].role == "operator" and events[2].details["position"] == "2"


def test_lease_expires_lazily_and_passes_on() -> None:
    desk, clock, events = desk_with_log(lease_s=30)
    for user in ("ana", "ben", "cy"):
        desk.request("lobby", user, "visitor")
    clock.now += 29.9
    assert desk.holder("lobby") == "ana"
    clock.now += 0.1
    state = desk.state("lobby")
    assert (state.holder, state.queue, state.remaining_s) == ("ben", ("cy",), 30.0)
    clock.now += 75  # ben's lease ran out 45 s ago, cy's 15 s ago
    state = desk.state("lobby")
    assert (state.holder, state.queue, state.expires_at) == (None, (), None)
    assert [(e.kind, e.actor) for e in events[3:]] == [
        ("expired", "ana"),
        ("granted", "ben"),
        ("expired", "ben"),
        ("granted", "cy"),
        ("expired", "cy"),
    ]


def test_staff_take_over_and_the_holder_waits_first() -> None:
    desk, clock, events = desk_with_log()
    desk.request("lobby", "ana", "visitor")
    desk.request("lobby", "ben", "visitor")
    clock.now += 12
    state = desk.takeover("lobby", "olga", "operator")
    assert (state.holder, state.queue, state.remaining_s) == ("olga", ("ana", "ben"), 30.0)
    assert events[-1].kind == "takeover" and events[-1].details["previous"] == "ana"
    assert events[-1].role == "operator" and events[-1].at == clock.now
    state = desk.release("lobby", "olga", "operator")
    assert (state.holder, state.queue) == ("ana", ("ben",))
    with pytest.raises(PermissionError):
        desk.takeover("lobby", "ben", "visitor")
    with pytest.raises(PermissionError):
        desk.takeover("lobby", "aud", "auditor")
    assert desk.holder("lobby") == "ana"


def test_unrecorded_changes_do_not_happen() -> None:
    clock = FakeClock()

    def refuse(event: ControlEvent) -> None:
        raise OSError("disk full")

    desk = ControlDesk(30, clock, refuse, wall_clock=clock)
    with pytest.raises(OSError, match="disk full"):
        desk.request("lobby", "ana", "visitor")
    assert desk.holder("lobby") is None  # the grant was not recorded, so it did not happen


def test_state_reads_record_nothing_without_changes() -> None:
    clock = FakeClock()
    recorded: list[ControlEvent] = []
    desk = ControlDesk(30, clock, recorded.append, wall_clock=clock)
    desk.state("lobby")
    desk.holder("lobby")
    assert not desk.may_steer("lobby", "ana")
    assert recorded == []


def test_queue_is_bounded() -> None:
    clock = FakeClock()
    events: list[ControlEvent] = []
    desk = ControlDesk(30, clock, events.append, wall_clock=clock, max_queue=2)
    for user in ("a", "b", "c", "d"):
        desk.request("lobby", user, "visitor")
    assert desk.state("lobby").queue == ("b", "c")
    assert events[-1].kind == "refused" and events[-1].actor == "d"


# --- presence ------------------------------------------------------------------------------------


def test_presence_names_staff_and_counts_visitors() -> None:
    presence = Presence()
    tokens = [
        presence.join("lobby", "olga", "operator"),
        presence.join("lobby", "olga", "operator"),  # a second tab
        presence.join("lobby", "aud", "auditor"),
        presence.join("lobby", "ana", "visitor"),
        presence.join("lobby", "ana", "visitor"),
        presence.join("lobby", "ben", "visitor"),
        presence.join("hall", "adm", "admin"),
    ]
    assert len(set(tokens)) == len(tokens)
    watchers = presence.watchers("lobby")
    assert (watchers.staff, watchers.visitors) == (("aud", "olga"), 2)
    presence.leave(tokens[0])
    assert presence.watchers("lobby").staff == ("aud", "olga")  # still in the other tab
    presence.leave(tokens[1])
    presence.leave(tokens[1])  # idempotent
    presence.leave(tokens[5])
    watchers = presence.watchers("lobby")
    assert (watchers.staff, watchers.visitors) == (("aud",), 1)
    assert presence.watchers("hall").staff == ("adm",)
    assert presence.watchers("nowhere").visitors == 0
    with pytest.raises(ValueError, match="unknown role"):
        presence.join("lobby", "x", "superuser")


def test_presence_is_thread_safe() -> None:
    presence = Presence()

    def churn() -> None:
        for _ in range(300):
            presence.leave(presence.join("lobby", "v", "visitor"))

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert presence.watchers("lobby").visitors == 0


# --- the scan schedule on a new view -------------------------------------------------------------


def test_live_veilers_search_the_whole_first_frame(live_engine: Engine) -> None:
    frame = DemoSource(seed=1, people=3, width=W, height=H).frame(0)
    tiles = len(full_scan(W, H, live_engine.settings.detector))
    assert tiles >= 2  # a fine level and the base
    scanner = ScheduledScanner(live_engine.scanner, W, H, period_frames=10)
    scanner.detect(frame)
    assert scanner.stats.tiles_scanned < tiles  # files: the look-back covers the first period
    scanner.request_full_scan()
    scanner.detect(frame)
    assert scanner.stats.tiles_scanned == tiles
    scanner.detect(frame)
    assert scanner.stats.tiles_scanned < tiles
    live = live_engine.video_veiler(Fraction(10), W, H, live=True).detector
    assert isinstance(live, ScheduledScanner)
    live.detect(frame)
    assert live.stats.tiles_scanned == tiles


def test_live_base_level_searches_what_changed_and_carries_the_rest(live_engine: Engine) -> None:
    demo = DemoSource(seed=4, people=4, width=W, height=H)
    scanner = ScheduledScanner(live_engine.scanner, W, H, period_frames=30, motion=True)
    tiles = full_scan(W, H, live_engine.settings.detector)
    full_cost = sum(tile.cost for tile in tiles)
    base_cost = sum(tile.cost for tile in tiles if tile.level == max(t.level for t in tiles))
    first = demo.frame(0)
    scanner.request_full_scan()
    found = scanner.detect(first)
    assert scanner.stats.network_pixels == full_cost
    again = scanner.detect(first.copy())  # a still picture: the same pixels hold the same faces
    assert scanner.stats.network_pixels == 0
    assert np.array_equal(again.boxes, found.boxes)
    base_costs = []
    for index in range(1, 12):  # walkers move: only around them is searched afresh, and every face is found
        found = scanner.detect(demo.frame(index))
        base_costs.append(scanner.stats.base_pixels)
        for box in demo.ground_truth(index):
            assert any(iou(b.tolist(), box) > 0.4 for b in found.boxes), (index, box)
    in_full = [index for index, cost in enumerate(base_costs, 1) if cost == base_cost]
    assert 9 in in_full  # the stream's 11th frame: in full every 1/3 period (10 frames here)
    assert len(in_full) <= 3  # or when the changed parts would cost half as much
    assert all(0 < cost <= 0.5 * base_cost for cost in base_costs if cost != base_cost)


def test_live_streams_take_turns_with_their_full_searches(live_engine: Engine) -> None:
    demo = DemoSource(seed=5, people=3, width=W, height=H)
    peaks = []
    for _ in range(2):
        detector = live_engine.video_veiler(Fraction(10), W, H, live=True).detector
        assert isinstance(detector, ScheduledScanner)
        costs = []
        for index in range(11):
            detector.detect(demo.frame(index))
            costs.append(detector.stats.base_pixels)
        peaks.append(int(np.argmax(costs[1:])))  # the base level in full, after the first frame's full search
    assert peaks[0] != peaks[1]


# --- the camera pipeline -------------------------------------------------------------------------


def test_published_frames_veil_every_face(live_engine: Engine) -> None:
    demo = DemoSource(seed=2, people=3, width=W, height=H, fps=10)
    outputs: list[VeiledOutput] = []
    with CameraPipeline("demo", demo, live_engine, settings(), [outputs.append]) as pipeline:
        frames = collect(pipeline, 3.5)
        stats = pipeline.stats()
    shown = [f for f in frames if not f.withheld]
    assert len(shown) >= 10, f"only {len(shown)} veiled frames in 3.5 s: {stats}"
    for frame in shown:
        assert (frame.width, frame.height) == (W, H)
        assert frame.published_at - frame.captured_at < 3.0
        assert_faces_veiled(demo, frame)
    assert len(outputs) >= len(shown)
    for output in outputs:
        assert not output.pixels.flags.writeable
        raw = demo.frame(output.source_seq)
        assert all(face_detail(raw, output.pixels, box) < VEILED for box in demo.ground_truth(output.source_seq))
        assert abs(output.wall_time - time.time()) < 30
        assert not hasattr(output, "raw_faces")  # raw pixels never ride with veiled output
    # The measure does catch a face that is merely JPEG-compressed, not veiled:
    raw = demo.frame(0)
    unveiled = decode(bytes(cv2.imencode(".jpg", cv2.cvtColor(raw, cv2.COLOR_RGB2BGR))[1].tobytes()))
    assert all(face_detail(raw, unveiled, box) > 0.6 for box in demo.ground_truth(0))
    assert stats.state is SourceState.LIVE
    assert stats.published >= len(shown) and stats.frames_in >= stats.published
    assert 5 <= stats.fps_in <= 12 and stats.fps_out > 0
    assert 0 < stats.detector_ms_mean <= stats.detector_ms_p99 and stats.latency_ms_p99 > 0
    assert stats.restarts == 0 and stats.errors == 0


def test_raw_faces_for_the_sealed_store_are_exactly_what_the_veils_cover(live_engine: Engine) -> None:
    demo = DemoSource(seed=5, people=3, width=W, height=H, fps=10)
    outputs: list[VeiledOutput] = []
    raws: list[RawFacePixels] = []
    with CameraPipeline("demo", demo, live_engine, settings(), [outputs.append], raw_faces=raws.append) as pipeline:
        collect(pipeline, 2.5)
    assert len(outputs) >= 5
    assert [r.seq for r in raws] == [o.seq for o in outputs]  # one raw-face message per published frame
    covered = 0
    for output, faces in zip(outputs, raws, strict=True):
        raw = demo.frame(output.source_seq)
        for region in faces.regions:
            y1, x1 = region.y0 + region.height, region.x0 + region.width
            assert np.array_equal(region.pixels, raw[region.y0 : y1, region.x0 : x1])  # raw, not veiled
            assert not np.array_equal(region.pixels, output.pixels[region.y0 : y1, region.x0 : x1])
        for box in demo.ground_truth(output.source_seq):
            x0, y0, x1, y1 = (int(v) for v in box)
            inside = any(
                r.x0 <= x0 + 2 and r.y0 <= y0 + 2 and r.x0 + r.width >= x1 - 2 and r.y0 + r.height >= y1 - 2
                for r in faces.regions
            )
            covered += inside
    total = sum(len(demo.ground_truth(o.source_seq)) for o in outputs)
    assert covered >= 0.9 * total, f"only {covered} of {total} faces kept for unmasking"


def test_crashed_veiler_withholds_then_recovers(live_engine: Engine) -> None:
    demo = DemoSource(seed=3, people=3, width=W, height=H, fps=10)
    built: list[FrameVeiler] = []
    healthy = engine_veilers(live_engine)
    crashing = scanner_veilers(live_engine, lambda s, w, h, p: CrashingScanner(s, w, h, p, crash_after=5))

    def veilers(width: int, height: int, fps: float) -> FrameVeiler:
        built.append((healthy if built else crashing)(width, height, fps))
        return built[-1]

    with CameraPipeline("demo", demo, veilers, settings()) as pipeline:
        frames = collect(pipeline, 8.0, until=lambda: pipeline.stats().published >= 12)
        stats = pipeline.stats()
    kinds = "".join("w" if f.withheld else "v" for f in frames)
    assert "vw" in kinds and "wv" in kinds[kinds.index("vw") :], kinds  # veiled, withheld, veiled again
    assert stats.restarts == 1 and len(built) == 2
    assert stats.errors >= 1 and "detector crashed" in (stats.last_error or "")
    for frame in frames:
        if frame.withheld:
            grey = decode(frame.jpeg)
            assert abs(float(np.median(grey)) - 96) < 6  # the flat placeholder, nothing of the scene
        else:
            assert_faces_veiled(demo, frame)
    assert len({f.jpeg for f in frames if f.withheld}) == 1


def test_late_frames_are_withheld(live_engine: Engine) -> None:
    demo = DemoSource(seed=4, people=2, width=W, height=H, fps=10)
    outputs: list[VeiledOutput] = []
    slow = scanner_veilers(live_engine, SlowScanner)
    with CameraPipeline("demo", demo, slow, settings(deadline_s=0.3), [outputs.append]) as pipeline:
        frames = collect(pipeline, 2.5)
        stats = pipeline.stats()
    assert frames and all(f.withheld for f in frames)
    assert outputs == []
    assert stats.published == 0 and stats.withheld >= len(frames)


def test_slow_consumer_costs_frames_not_latency(live_engine: Engine) -> None:
    demo = DemoSource(seed=5, people=2, width=320, height=180, fps=20)

    def slow_sink(output: VeiledOutput) -> None:
        time.sleep(0.3)

    live = settings(width=320, height=180, fps=20, max_queue=2)
    with CameraPipeline("demo", demo, live_engine, live, [slow_sink]) as pipeline:
        time.sleep(2.5)
        stats = pipeline.stats()
    assert stats.frames_in >= 35, stats  # capture kept pace with the camera
    assert stats.dropped >= 15 and stats.published <= 10


def test_zoomed_view_is_cut_from_the_source_and_veiled(live_engine: Engine) -> None:
    demo = DemoSource(seed=6, people=3, width=W, height=H, fps=10)
    outputs: list[VeiledOutput] = []
    scanners: list[RecordingScanner] = []

    def recording(scanner: FaceScanner, width: int, height: int, period: int) -> ScheduledScanner:
        scanners.append(RecordingScanner(scanner, width, height, period))
        return scanners[-1]

    zoom = PTZView(zoom=1.5, pan=0.2, tilt=0.1)
    with CameraPipeline("demo", demo, scanner_veilers(live_engine, recording), settings(), [outputs.append]) as cam:
        collect(cam, 5.0, until=lambda: len(outputs) >= 3)
        cam.set_view(zoom)
        assert cam.view == zoom
        collect(cam, 8.0, until=lambda: sum(o.view == zoom for o in outputs) >= 15)
    zoomed = [o for o in outputs if o.view == zoom]
    assert len(zoomed) >= 15
    # A new veiler for the new view, whose first frame searched every tile of every level.
    tiles = len(full_scan(W, H, live_engine.settings.detector))
    assert len(scanners) == 2
    assert [s.history[0].tiles_scanned for s in scanners] == [tiles, tiles]
    assert any(stats.tiles_scanned < tiles for stats in scanners[1].history[1:])  # then the schedule resumes
    x0, y0, x1, _ = zoom.crop(W, H, W / H)
    scale = W / (x1 - x0)
    checked = 0
    for output in zoomed:
        reference = view_pixels(demo.frame(output.source_seq), zoom, W, H)
        assert float(np.median(cv2.absdiff(reference, output.pixels))) < 4  # the same view, veiled
        for bx0, by0, bx1, by1 in demo.ground_truth(output.source_seq):
            box = ((bx0 - x0) * scale, (by0 - y0) * scale, (bx1 - x0) * scale, (by1 - y0) * scale)
            if box[0] >= 0 and box[1] >= 0 and box[2] <= W and box[3] <= H:
                assert face_detail(reference, output.pixels, box) < VEILED
                checked += 1
    assert checked >= 5
    unzoomed = view_pixels(demo.frame(zoomed[0].source_seq), PTZView(), W, H)
    assert float(np.median(cv2.absdiff(unzoomed, zoomed[0].pixels))) > 4


def test_lifecycle_and_a_dead_camera(live_engine: Engine) -> None:
    source = open_source("http://127.0.0.1:9/video.mjpg", open_timeout_s=1, read_timeout_s=1, max_backoff_s=1)
    pipeline = CameraPipeline("dead", source, live_engine, settings())
    assert pipeline.stats().state is SourceState.OFFLINE
    pipeline.stop()  # before start: harmless
    pipeline = CameraPipeline("dead", source, live_engine, settings())
    pipeline.start()
    with pytest.raises(RuntimeError, match="already running"):
        pipeline.start()
    start = time.monotonic()
    assert pipeline.wait_next(-1, 1.0) is None
    assert 0.9 <= time.monotonic() - start < 2
    assert pipeline.stats().state is SourceState.RECONNECTING
    assert pipeline.latest() is None
    pipeline.stop()
    pipeline.stop()
    assert pipeline.wait_next(-1, 5.0) is None  # returns at once once stopped
    assert not [t for t in threading.enumerate() if t.name.endswith("-dead")]
    stats: CameraStats = pipeline.stats()
    assert stats.state is SourceState.OFFLINE and stats.published == 0
    with pytest.raises(RuntimeError):
        pipeline.start()
