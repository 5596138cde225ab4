"""One camera, live: capture → PTZ crop → veil → JPEG → viewers and sinks; nothing leaves unveiled.

Two threads per camera. The capture thread reads the source (thinned to the camera's frame rate)
into a queue of `max_queue` frames that drops the oldest when full — a slow veiler costs frames,
never latency — and counts what it drops. The veil thread cuts the PTZ view from the
full-resolution frame, resizes it to the output size, veils it with this camera's own
`FrameVeiler` (live: no look-back, each frame back at once), encodes it as JPEG and publishes it.

It fails closed. A frame not veiled within `deadline_s` of its capture — detector slow, crashed,
still warming up, a new view or resolution being searched — is withheld: viewers get a grey
"withheld" placeholder marked `withheld=True` (never the previous frame passed off as new, never
raw pixels) and sinks get nothing. If veiling raises, the veiler is dropped and rebuilt after a
backoff (0.5 s doubling to 10 s); until then every frame is withheld. A new view or frame size
rebuilds the veiler too, and its first frame is searched at every pyramid level, so nothing is
published before the whole new view has been searched. A real PTZ head's move (`hold_for_motion`)
does the same once the head is still, and withholds every frame captured while it moves.

Sinks (the recorder) get each published veiled frame's RGB pixels, read-only, on the veil thread:
they must not block (hand the frame to a bounded queue of their own); one that raises is counted
and skipped. Raw faces never ride with them: the unveiled pixels under the veils go, as
`RawFacePixels`, only to the one `raw_faces` channel the assembly code connects to the face
sealer (and are not even cut out when nothing is connected).
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.detection.schedule import ScheduledScanner
from veilwatch.errors import VeilingError
from veilwatch.frames import Frame, Image, RawRegion
from veilwatch.live.ptz import PTZView, view_pixels
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.veiler import FrameVeiler
from veilwatch.redaction.veils import outermost
from veilwatch.settings import LiveSettings
from veilwatch.sources.base import CapturedFrame, Source, SourceState
from veilwatch.sources.urls import scrub

log = logging.getLogger(__name__)

T = TypeVar("T")

# (output width, output height, frame rate) → a fresh veiler for one live stream.
VeilerFactory = Callable[[int, int, float], FrameVeiler]
Sink = Callable[["VeiledOutput"], None]
RawFaceSink = Callable[["RawFacePixels"], None]  # connect only to the sealer, which encrypts at once

FPS_WINDOW_S = 5.0  # frame rates are measured over this many recent seconds
RATE_TOLERANCE = 0.25  # a frame up to this share of a period early still counts as due
PLACEHOLDER_GREY = 96
SOURCE_RETRY_S = 1.0  # wait before reading a source again whose iterator ended or raised


@dataclass(frozen=True)
class PublishedFrame:
    """What viewers get: a veiled JPEG, or (withheld=True) a placeholder standing for a withheld frame."""

    seq: int  # increases by one per published frame of this camera
    jpeg: bytes
    width: int
    height: int
    captured_at: float  # time.monotonic() of capture
    published_at: float  # time.monotonic() of publication
    withheld: bool
    source_seq: int = -1  # the captured frame's number in its source


@dataclass(frozen=True)
class VeiledOutput:
    """What sinks (the recorder) get: veiled RGB pixels (read-only) and their times."""

    camera: str
    seq: int
    source_seq: int
    pixels: Image
    captured_at: float  # time.monotonic()
    published_at: float  # time.monotonic()
    wall_time: float  # time.time() of capture
    view: PTZView


@dataclass(frozen=True)
class RawFacePixels:
    """UNVEILED pixels under one published frame's veils, for the face sealer only (never shown or stored clear)."""

    camera: str
    seq: int  # the published frame's seq (as in its VeiledOutput)
    source_seq: int
    wall_time: float  # time.time() of capture
    regions: tuple[RawRegion, ...]


@dataclass(frozen=True)
class CameraStats:
    """How a camera is doing: source state, rates, latencies (ms) and counters since start."""

    state: SourceState
    fps_in: float
    fps_out: float
    detector_ms_mean: float
    detector_ms_p99: float
    latency_ms_p99: float
    frames_in: int
    published: int
    withheld: int
    dropped: int
    restarts: int
    errors: int
    sink_errors: int
    last_error: str | None


class _Lifecycle(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class DropOldestQueue(Generic[T]):
    """A bounded FIFO whose `put` never blocks: when full, the oldest item is dropped (and counted)."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Add an item; True if the oldest had to be dropped to make room."""
        with self._ready:
            dropped = len(self._items) >= self._maxsize
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._ready.notify()
            return dropped

    def get(self, timeout: float) -> T | None:
        """The oldest item, waiting up to `timeout` s; None on timeout or once closed."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items and not self._closed else None

    def close(self) -> None:
        """Wake every waiter; later gets return None."""
        with self._ready:
            self._closed = True
            self._items.clear()
            self._ready.notify_all()


@dataclass
class _Counters:
    """Counters and recent timings, guarded by the pipeline's stats lock."""

    window: int
    frames_in: int = 0
    published: int = 0
    withheld: int = 0
    restarts: int = 0
    errors: int = 0
    sink_errors: int = 0
    last_error: str | None = None
    arrivals: deque[float] = field(default_factory=deque)
    departures: deque[float] = field(default_factory=deque)
    detector_ms: deque[float] = field(default_factory=deque)
    latency_ms: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.detector_ms = deque(maxlen=self.window)
        self.latency_ms = deque(maxlen=self.window)


def engine_veilers(engine: Engine) -> VeilerFactory:
    """Live veilers from a shared engine (its ONNX Runtime session is thread-safe; trackers are per stream)."""

    def make(width: int, height: int, fps: float) -> FrameVeiler:
        return engine.video_veiler(Fraction(fps).limit_denominator(1001), width, height, live=True)

    return make


class CameraPipeline:
    """The live pipeline of one camera: start(), then latest()/wait_next() for viewers, stop() at the end."""

    def __init__(
        self,
        name: str,
        source: Source,
        veilers: Engine | VeilerFactory,
        settings: LiveSettings | None = None,
        sinks: Sequence[Sink] = (),
        *,
        raw_faces: RawFaceSink | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.settings = settings or LiveSettings()
        self._make_veiler = engine_veilers(veilers) if isinstance(veilers, Engine) else veilers
        self._sinks = list(sinks)
        self._raw_sink = raw_faces
        self._queue: DropOldestQueue[CapturedFrame] = DropOldestQueue(self.settings.max_queue)
        self._stop = threading.Event()
        self._lifecycle = _Lifecycle.NEW
        self._lifecycle_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # View: written by the web server, read by the veil thread.
        self._view_lock = threading.Lock()
        self._view = PTZView()
        self._view_version = 0
        self._still_from = -math.inf  # a real PTZ head moved: frames captured before this are withheld
        # Publication: the latest frame, and a condition for streams waiting for the next one.
        self._published = threading.Condition()
        self._latest: PublishedFrame | None = None
        self._seq = 0
        self._stats_lock = threading.Lock()
        self._counters = _Counters(self.settings.stats_window)
        # Veil-thread state.
        self._veiler: FrameVeiler | None = None
        self._veiler_key: tuple[int, int, int] | None = None
        self._rate = self.settings.fps
        self._epoch: float | None = None
        self._last_index = -1
        self._retry_at = 0.0
        self._backoff = self.settings.restart_backoff_s
        self._failed = False
        self._placeholder: bytes | None = None
        self._next_due = -math.inf

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture and veil threads (once)."""
        with self._lifecycle_lock:
            if self._lifecycle is not _Lifecycle.NEW:
                raise RuntimeError(f"camera {self.name!r} pipeline was already {self._lifecycle.value}")
            self._lifecycle = _Lifecycle.RUNNING
            self._threads = [
                threading.Thread(target=self._capture_loop, name=f"capture-{self.name}", daemon=True),
                threading.Thread(target=self._veil_loop, name=f"veil-{self.name}", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        log.info("camera %s: started (%s)", self.name, self.source.display)

    def stop(self) -> None:
        """Stop both threads, waiting for each at most `join_timeout_s` (idempotent)."""
        with self._lifecycle_lock:
            if self._lifecycle is _Lifecycle.STOPPED:
                return
            self._lifecycle = _Lifecycle.STOPPED
        try:
            self._stop.set()
            self._queue.close()
            for thread in self._threads:
                thread.join(self.settings.join_timeout_s)
                if thread.is_alive():
                    log.warning("camera %s: thread %s did not stop in time", self.name, thread.name)
        finally:
            with self._published:
                self._published.notify_all()

    def __enter__(self) -> CameraPipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- viewers and steering ----------------------------------------------------------------------

    def latest(self) -> PublishedFrame | None:
        """The most recently published frame (veiled, or a withheld placeholder), if any."""
        with self._published:
            return self._latest

    def wait_next(self, after_seq: int, timeout: float) -> PublishedFrame | None:
        """The latest published frame once its seq exceeds `after_seq`; None after `timeout` s or on stop."""
        end = time.monotonic() + timeout
        with self._published:
            while self._latest is None or self._latest.seq <= after_seq:
                remaining = end - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._published.wait(remaining)
            return self._latest

    @property
    def view(self) -> PTZView:
        """The current digital pan/tilt/zoom."""
        with self._view_lock:
            return self._view

    def set_view(self, view: PTZView) -> None:
        """Steer; frames are withheld until the new view has been searched in full."""
        with self._view_lock:
            if view != self._view:
                self._view = view
                self._view_version += 1

    def hold_for_motion(self, seconds: float) -> None:
        """A real PTZ head moves: withhold frames captured in the next `seconds`, then search the picture in full."""
        with self._view_lock:
            self._still_from = max(self._still_from, time.monotonic() + seconds)
            self._view_version += 1  # a new veiler (full first search) for the first frame after the hold

    def stats(self) -> CameraStats:
        """Rates, latencies and counters now."""
        now = time.monotonic()
        running = self._lifecycle is _Lifecycle.RUNNING
        with self._stats_lock:
            c = self._counters
            detector = list(c.detector_ms)
            latency = list(c.latency_ms)
            return CameraStats(
                state=self.source.state if running else SourceState.OFFLINE,
                fps_in=_rate(c.arrivals, now),
                fps_out=_rate(c.departures, now),
                detector_ms_mean=float(np.mean(detector)) if detector else 0.0,
                detector_ms_p99=_p99(detector),
                latency_ms_p99=_p99(latency),
                frames_in=c.frames_in,
                published=c.published,
                withheld=c.withheld,
                dropped=self._queue.dropped,
                restarts=c.restarts,
                errors=c.errors,
                sink_errors=c.sink_errors,
                last_error=c.last_error or self.source.last_error,
            )

    # --- capture thread ----------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for captured in self.source.frames(self._stop):
                    if self._due(captured.captured_at):
                        self._arrived(captured.captured_at)
                        self._queue.put(captured)
            except Exception as exc:  # a source must never take the camera down; read it again
                self._note_error(f"source failed: {type(exc).__name__}: {scrub(str(exc))}")
            self._stop.wait(SOURCE_RETRY_S)

    def _due(self, at: float) -> bool:
        """Thin the source to the camera's rate (a 25 fps camera shown at 10 fps costs 10 veils/s)."""
        period = 1.0 / self.settings.fps
        if at < self._next_due - RATE_TOLERANCE * period:
            return False
        self._next_due = max(self._next_due + period, at + (1 - RATE_TOLERANCE) * period)
        return True

    def _arrived(self, at: float) -> None:
        with self._stats_lock:
            self._counters.frames_in += 1
            _remember(self._counters.arrivals, at)

    # --- veil thread -------------------------------------------------------------------------------

    def _veil_loop(self) -> None:
        try:
            while not self._stop.is_set():
                captured = self._queue.get(timeout=0.2)
                if captured is None:
                    continue
                try:
                    self._process(captured)
                except Exception as exc:  # defensive: nothing was published for this frame; keep going
                    log.exception("camera %s: veil stage failed unexpectedly", self.name)
                    self._note_error(f"veil stage: {type(exc).__name__}: {scrub(str(exc))}")
        finally:
            self._veiler = None

    def _process(self, captured: CapturedFrame) -> None:
        """Veil one frame and publish it, or withhold it."""
        if time.monotonic() - captured.captured_at > self.settings.deadline_s:
            self._withhold(captured)  # already too old: spend nothing on it
            return
        view, still_from = self._view_and_hold()
        if captured.captured_at < still_from:
            self._withhold(captured)  # captured while the real head moved: not the picture that will be searched
            return
        try:
            veiled = self._veil(captured, view)
        except Exception as exc:
            self._veiler_failed(exc)
            self._withhold(captured)
            return
        if veiled is None:
            self._withhold(captured)
            return
        pixels, jpeg, detector_ms, raw_faces = veiled
        now = time.monotonic()
        if now - captured.captured_at > self.settings.deadline_s:
            self._withhold(captured)
            return
        frame = self._publish(captured, jpeg, withheld=False, at=now)
        self._record_success(captured, detector_ms, now)
        self._feed_sinks(captured, frame, pixels, view[0], raw_faces)

    def _view_and_hold(self) -> tuple[tuple[PTZView, int], float]:
        """The current view, how many times it (or the real head) changed, and when the head was last still."""
        with self._view_lock:
            return (self._view, self._view_version), self._still_from

    def _veil(
        self, captured: CapturedFrame, view: tuple[PTZView, int]
    ) -> tuple[Image, bytes, float, tuple[RawRegion, ...]] | None:
        """The veiled pixels, their JPEG, the veiling time (ms) and the raw faces; None while the veiler is down."""
        source = captured.frame.pixels
        pixels = view_pixels(source, view[0], self.settings.width, self.settings.height)
        veiler = self._veiler_for((view[1], source.shape[1], source.shape[0]))
        if veiler is None:
            return None
        start = time.monotonic()
        ready = veiler.push(Frame(self._index(captured.captured_at), pixels))
        detector_ms = (time.monotonic() - start) * 1000
        if len(ready) != 1:
            raise VeilingError(f"a live veiler must return each frame at once, returned {len(ready)}")
        veiled = ready[0].frame.pixels
        veiled.flags.writeable = False  # sinks share it
        raw_faces = _raw_faces(pixels, veiler, ready[0].veiled_boxes) if self._raw_sink is not None else ()
        return veiled, self._jpeg(veiled), detector_ms, raw_faces

    def _veiler_for(self, key: tuple[int, int, int]) -> FrameVeiler | None:
        """This stream's veiler, rebuilt (with a full first search) for a new view or frame size."""
        if self._veiler is not None and self._veiler_key == key:
            return self._veiler
        if time.monotonic() < self._retry_at:
            return None
        self._veiler = None
        source_fps = self.source.fps
        fps = min(self.settings.fps, source_fps) if source_fps else self.settings.fps
        veiler = self._make_veiler(self.settings.width, self.settings.height, fps)
        self._rate, self._epoch, self._last_index = fps, None, -1
        if isinstance(veiler.detector, ScheduledScanner):
            veiler.detector.request_full_scan()  # nothing found in the old view holds in the new one
        if self._failed:
            self._failed = False
            with self._stats_lock:
                self._counters.restarts += 1
            log.info("camera %s: veiler restarted", self.name)
        self._veiler, self._veiler_key = veiler, key
        return veiler

    def _index(self, captured_at: float) -> int:
        """The frame's number at the veiler's rate, counted in time, so that hold-overs (in frames) last
        as many seconds as configured however many frames the source sends or the queue drops."""
        if self._epoch is None:
            self._epoch = captured_at
        self._last_index = max(self._last_index + 1, round((captured_at - self._epoch) * self._rate))
        return self._last_index

    def _veiler_failed(self, exc: Exception) -> None:
        """Drop the veiler and rebuild it after a growing backoff."""
        self._veiler, self._veiler_key = None, None
        self._failed = True
        self._retry_at = time.monotonic() + self._backoff
        log.warning("camera %s: veiling failed (%s); withholding, retry in %.1f s", self.name, exc, self._backoff)
        self._backoff = min(self._backoff * 2, self.settings.max_restart_backoff_s)
        self._note_error(f"veiling failed: {type(exc).__name__}: {scrub(str(exc))}")

    def _jpeg(self, pixels: Image) -> bytes:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            raise VeilingError("JPEG encoding failed")
        return bytes(encoded.tobytes())

    def _placeholder_jpeg(self) -> bytes:
        if self._placeholder is None:
            w, h = self.settings.width, self.settings.height
            grey = np.full((h, w, 3), PLACEHOLDER_GREY, np.uint8)
            scale = max(0.4, w / 640)
            (tw, th), _ = cv2.getTextSize("withheld", cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
            origin = ((w - tw) // 2, (h + th) // 2)
            cv2.putText(grey, "withheld", origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 2, cv2.LINE_AA)
            self._placeholder = self._jpeg(grey)
        return self._placeholder

    # --- publication -------------------------------------------------------------------------------

    def _withhold(self, captured: CapturedFrame) -> None:
        with self._stats_lock:
            self._counters.withheld += 1
        self._publish(captured, self._placeholder_jpeg(), withheld=True, at=time.monotonic())

    def _publish(self, captured: CapturedFrame, jpeg: bytes, *, withheld: bool, at: float) -> PublishedFrame:
        with self._published:
            self._seq += 1
            frame = PublishedFrame(
                self._seq,
                jpeg,
                self.settings.width,
                self.settings.height,
                captured.captured_at,
                at,
                withheld,
                captured.seq,
            )
            self._latest = frame
            self._published.notify_all()
        return frame

    def _record_success(self, captured: CapturedFrame, detector_ms: float, now: float) -> None:
        self._backoff = self.settings.restart_backoff_s
        with self._stats_lock:
            c = self._counters
            c.published += 1
            c.detector_ms.append(detector_ms)
            c.latency_ms.append((now - captured.captured_at) * 1000)
            _remember(c.departures, now)

    def _feed_sinks(
        self,
        captured: CapturedFrame,
        frame: PublishedFrame,
        pixels: Image,
        view: PTZView,
        raw_faces: tuple[RawRegion, ...],
    ) -> None:
        wall = time.time() - (time.monotonic() - captured.captured_at)
        output = VeiledOutput(
            self.name, frame.seq, captured.seq, pixels, captured.captured_at, frame.published_at, wall, view
        )
        for sink in self._sinks:
            self._deliver(sink, output)
        if self._raw_sink is not None:
            self._deliver(self._raw_sink, RawFacePixels(self.name, frame.seq, captured.seq, wall, raw_faces))

    def _deliver(self, sink: Callable[[T], None], item: T) -> None:
        try:
            sink(item)
        except Exception as exc:  # a failing sink must not stop the live view
            with self._stats_lock:
                self._counters.sink_errors += 1
            log.warning("camera %s: sink failed: %s: %s", self.name, type(exc).__name__, scrub(str(exc)))

    def _note_error(self, message: str) -> None:
        with self._stats_lock:
            self._counters.errors += 1
            self._counters.last_error = message


def _raw_faces(raw: Image, veiler: FrameVeiler, boxes: npt.NDArray[np.float32]) -> tuple[RawRegion, ...]:
    """Copies of the unveiled pixels under each veil region of this frame."""
    height, width = raw.shape[:2]
    regions = veiler.veil.regions(outermost(boxes), width, height)
    return tuple(RawRegion(r.x0, r.y0, raw[r.y0 : r.y1, r.x0 : r.x1].copy()) for r in regions if r.width and r.height)


def _remember(times: deque[float], at: float) -> None:
    times.append(at)
    while times and times[0] < at - FPS_WINDOW_S:
        times.popleft()


def _rate(times: deque[float], now: float) -> float:
    recent = [t for t in times if t >= now - FPS_WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    return (len(recent) - 1) / span if span > 0 else 0.0


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else 0.0
