"""The composition root of the veiling engine: loads the model once, builds per-stream veilers."""

from __future__ import annotations

from fractions import Fraction

from veilwatch.detection.centerface import CenterFace, RuntimeOptions
from veilwatch.detection.model_files import resolve_model
from veilwatch.detection.scanner import FaceScanner
from veilwatch.detection.schedule import ScheduledScanner
from veilwatch.pipeline.veiler import FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.settings import AnonymizeSettings
from veilwatch.tracking.tracker import FaceTracker, TrackerConfig

DEFAULT_FPS = 25.0  # assumed when a stream does not say
MEMORY_FACTOR = 2  # tracks are remembered this many hold-over spans, for the unveiled-run audit


class Engine:
    """One loaded detector plus the settings to veil images and video streams with it."""

    def __init__(self, settings: AnonymizeSettings) -> None:
        self.settings = settings
        detector = settings.detector
        self.network = CenterFace(
            resolve_model(detector.model),
            RuntimeOptions(threads=detector.threads, device=detector.device, precision=detector.precision),
        )
        self.scanner = FaceScanner(self.network, detector)

    def image_veiler(self) -> FrameVeiler:
        """A veiler for a single still image (no tracking)."""
        return FrameVeiler(self.scanner, Veil(self.settings.veil))

    def video_veiler(self, rate: Fraction, width: int, height: int, *, live: bool = False) -> FrameVeiler:
        """A veiler for one video stream; live streams get no look-back, so their first frame is searched in full."""
        fps = float(rate) if rate else DEFAULT_FPS
        period = max(1, round(self.settings.detector.full_scan_seconds * fps))
        # Live streams have no look-back to make up for a late find, so their finest level also
        # searches, every frame, wherever the picture moved.
        detector = ScheduledScanner(self.scanner, width, height, period, motion=live)
        if live:
            detector.request_full_scan()
        config = self.tracker_config(fps, period, live=live)
        return FrameVeiler(detector, Veil(self.settings.veil), FaceTracker(config), config.lookback_frames)

    def tracker_config(self, fps: float, scan_period: int, *, live: bool) -> TrackerConfig:
        """Tracker limits in frames; hold-over and look-back always span a scan period."""
        tracking = self.settings.tracker
        hold = max(round(tracking.hold_seconds * fps), scan_period)
        lookback = 0 if live else max(round(tracking.lookback_seconds * fps), scan_period)
        return TrackerConfig(
            hold_frames=hold,
            lookback_frames=lookback,
            memory_frames=max(hold + lookback, 1) * MEMORY_FACTOR,
            growth_per_frame=tracking.growth_per_frame,
            match_iou=tracking.match_iou,
        )
