"""The composition root of the veiling engine: loads the model once, builds per-stream veilers."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

from veilwatch.detection.centerface import CenterFace, RuntimeOptions
from veilwatch.detection.model_files import resolve_model
from veilwatch.detection.scanner import FaceScanner
from veilwatch.detection.schedule import ScheduledScanner
from veilwatch.pipeline.veiler import FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.settings import AnonymizeSettings, EngineSettings
from veilwatch.tracking.tracker import FaceTracker, TrackerConfig

DEFAULT_FPS = 25.0  # assumed when a stream does not say
MEMORY_FACTOR = 2  # tracks are remembered this many hold-over spans, for the unveiled-run audit
LOW_SCORE_SHARE = 0.2  # doubtful tracks are held (and looked back) this share of a scan period
FILE_MOTION_EVERY = 2  # files: the motion search runs every this many frames (the tracker bridges the other)
SYNC_PERIODS = 4  # a file's scan schedule starts afresh every this many scan periods (see schedule.py)
# Live streams get scan phases spaced by the golden ratio, so that any number of cameras take turns
# with their costly searches instead of all doing them on the same frame.
PHASE_STEP = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class VideoTiming:
    """The frame spans that rule a stream's veiling: what a part of a file needs around it."""

    scan_period: int  # every fine tile is searched at least once in this many frames
    hold: int  # a face stays veiled this many frames after its last sighting
    lookback: int  # ... and this many before its first (files only)
    memory: int  # a track is forgotten this many frames after its last sighting
    restart_every: int | None  # the scan schedule starts afresh at multiples of this index (files only)


def video_timing(settings: EngineSettings, rate: Fraction, *, live: bool = False) -> VideoTiming:
    """Frame spans for a stream at this frame rate; hold-over and look-back always span a scan period."""
    fps = float(rate) if rate else DEFAULT_FPS
    period = max(1, round(settings.detector.full_scan_seconds * fps))
    hold = max(round(settings.tracker.hold_seconds * fps), period)
    lookback = 0 if live else max(round(settings.tracker.lookback_seconds * fps), period)
    memory = max(hold + lookback, 1) * MEMORY_FACTOR
    return VideoTiming(period, hold, lookback, memory, None if live else SYNC_PERIODS * period)


class Engine:
    """One loaded detector plus the settings to veil images and video streams with it."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        detector = settings.detector
        self.network = CenterFace(
            resolve_model(detector.model),
            RuntimeOptions(threads=detector.threads, device=detector.device, precision=detector.precision),
        )
        self.scanner = FaceScanner(self.network, detector)
        self._live_streams = itertools.count()  # how many live veilers were made: their scan phases

    def image_veiler(self) -> FrameVeiler:
        """A veiler for a single still image (no tracking)."""
        return FrameVeiler(self.scanner, Veil(self.settings.veil))

    def video_veiler(
        self, rate: Fraction, width: int, height: int, *, live: bool = False, first_frame: int = 0
    ) -> FrameVeiler:
        """A veiler for one video stream; live streams get no look-back, so their first frame is searched in full.

        `first_frame` is the stream index of the first frame pushed (a part of a file starts at a
        multiple of `VideoTiming.restart_every`, where the whole run's schedule starts afresh too).
        """
        timing = video_timing(self.settings, rate, live=live)
        # The finest level also searches, every frame, wherever the picture moved (beyond the camera's
        # own motion): a small face walking across a still camera is otherwise found only when its
        # tile comes round, and between two finds it walks out from under its held veil (the sample
        # video's 24-px walker was unveiled for frames 0-27; video_veil_check's walkers 8-16 px
        # recall 0.81 → 0.996). Live streams have no look-back, so they need it all the more.
        detector = ScheduledScanner(
            self.scanner,
            width,
            height,
            timing.scan_period,
            motion=True,
            motion_every=1 if live else FILE_MOTION_EVERY,
            first_frame=first_frame,
            restart_every=timing.restart_every,
            phase=next(self._live_streams) * PHASE_STEP % 1.0 if live else 0.0,
        )
        if live:
            detector.request_full_scan()
        config = self._tracker_config(timing)
        veil = Veil(self.settings.veil)
        return FrameVeiler(detector, veil, FaceTracker(config), config.lookback_frames, timing.restart_every)

    def tracker_config(self, fps: float, scan_period: int, *, live: bool) -> TrackerConfig:
        """Tracker limits in frames; hold-over and look-back always span a scan period."""
        tracking = self.settings.tracker
        hold = max(round(tracking.hold_seconds * fps), scan_period)
        lookback = 0 if live else max(round(tracking.lookback_seconds * fps), scan_period)
        return self._tracker_config(
            VideoTiming(scan_period, hold, lookback, max(hold + lookback, 1) * MEMORY_FACTOR, None)
        )

    def _tracker_config(self, timing: VideoTiming) -> TrackerConfig:
        tracking = self.settings.tracker
        return TrackerConfig(
            hold_frames=timing.hold,
            lookback_frames=timing.lookback,
            memory_frames=timing.memory,
            growth_per_frame=tracking.growth_per_frame,
            match_iou=tracking.match_iou,
            low_score_hold_frames=min(timing.hold, max(1, round(timing.scan_period * LOW_SCORE_SHARE))),
        )


def output_settings(engine: Engine) -> AnonymizeSettings:
    """How an engine's files are written: its own settings for `anonymize`, else the defaults."""
    settings = engine.settings
    if isinstance(settings, AnonymizeSettings):
        return settings
    return AnonymizeSettings(detector=settings.detector, tracker=settings.tracker, veil=settings.veil)
