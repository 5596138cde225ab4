"""Prometheus metrics per camera, from a registry of our own (no process-global collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from veilwatch.room.cameras import Cameras
from veilwatch.room.refusals import RefusalTally

GAUGES = {
    "veilwatch_camera_fps_in": "frames per second received from the camera",
    "veilwatch_camera_fps_out": "veiled frames per second published",
    "veilwatch_camera_detector_latency_ms": "mean detector latency over the recent window",
    "veilwatch_camera_detector_latency_p99_ms": "99th percentile detector latency over the recent window",
    "veilwatch_camera_latency_p99_ms": "99th percentile capture-to-publish latency",
    "veilwatch_camera_withheld_frames_total": "frames withheld because they could not be veiled in time",
    "veilwatch_camera_dropped_frames_total": "frames dropped because the pipeline was behind",
    "veilwatch_camera_restarts_total": "restarts of the veiling stage",
    "veilwatch_camera_viewers": "people watching now (staff and visitors)",
    "veilwatch_camera_recorder_dropped_frames_total": "veiled frames the recorder could not keep up with",
    "veilwatch_camera_live": "1 when the camera delivers frames",
    "veilwatch_camera_ptz_errors_total": "real (ONVIF) PTZ moves that failed: camera unreachable or refusing",
}


def metrics_text(cameras: Cameras, refusals: RefusalTally) -> bytes:
    """The current metrics in the Prometheus text format."""
    registry = CollectorRegistry()
    gauges = {name: Gauge(name, help_text, ["camera"], registry=registry) for name, help_text in GAUGES.items()}
    unlogged = Gauge(
        "veilwatch_refusals_unlogged_total",
        "refusals of anonymous requests counted but not given a log leaf of their own (one per client a minute)",
        registry=registry,
    )
    unlogged.set(refusals.unlogged)
    for camera in cameras:
        name, stats, recorder, head = camera.name, camera.pipeline.stats(), camera.recorder, camera.head
        watchers = camera.presence.watchers(name)
        values = {
            "veilwatch_camera_fps_in": stats.fps_in,
            "veilwatch_camera_fps_out": stats.fps_out,
            "veilwatch_camera_detector_latency_ms": stats.detector_ms_mean,
            "veilwatch_camera_detector_latency_p99_ms": stats.detector_ms_p99,
            "veilwatch_camera_latency_p99_ms": stats.latency_ms_p99,
            "veilwatch_camera_withheld_frames_total": stats.withheld,
            "veilwatch_camera_dropped_frames_total": stats.dropped,
            "veilwatch_camera_restarts_total": stats.restarts,
            "veilwatch_camera_viewers": len(watchers.staff) + watchers.visitors,
            "veilwatch_camera_recorder_dropped_frames_total": recorder.dropped if recorder else 0,
            "veilwatch_camera_live": 1 if stats.state.value == "live" else 0,
            "veilwatch_camera_ptz_errors_total": head.stats().errors if head else 0,
        }
        for metric, value in values.items():
            gauges[metric].labels(camera=name).set(value)
    return bytes(generate_latest(registry))
