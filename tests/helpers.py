"""Builders shared by the tests: real faces, real clips, real metadata, the real CLI.

Faces come from scikit-image's public-domain astronaut portrait; clips are encoded with PyAV
inside the test; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

Pixels = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

# Where the astronaut's face is (x0, y0, x1, y1), as CenterFace draws it on the full portrait.
ASTRONAUT_FACE: Box = (175.0, 54.0, 275.0, 180.0)
# The region cut out to paste a face elsewhere (some hair and background around the face).
ASTRONAUT_CROP = (150, 30, 300, 210)
REPO_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _astronaut() -> Pixels:
    from skimage import data

    portrait = data.astronaut()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(portrait[:, :, :3], dtype=np.uint8)


def astronaut() -> Pixels:
    """The 512 × 512 RGB astronaut portrait (a fresh copy)."""
    return _astronaut().copy()


def face_patch(face_height: float) -> tuple[Pixels, Box]:
    """The astronaut's face, resized so that its face box is `face_height` px tall.

    Returns the patch and the face box inside it.
    """
    x0, y0, x1, y1 = ASTRONAUT_CROP
    scale = face_height / (ASTRONAUT_FACE[3] - ASTRONAUT_FACE[1])
    width, height = max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale))
    crop = _astronaut()[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(crop, (width, height), interpolation=interpolation)
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
    box = ((fx0 - x0) * sx, (fy0 - y0) * sy, (fx1 - x0) * sx, (fy1 - y0) * sy)
    return np.ascontiguousarray(patch), box


def background(width: int, height: int, *, seed: int = 0, noisy: bool = True) -> Pixels:
    """A plain grey or a smooth random-texture background."""
    if not noisy:
        return np.full((height, width, 3), 128, np.uint8)
    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 200, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR))


def paste_face(frame: Pixels, x: int, y: int, face_height: float) -> Box:
    """Paste the face patch with its top-left corner at (x, y) (in place); return the face box."""
    patch, (bx0, by0, bx1, by1) = face_patch(face_height)
    h, w = patch.shape[:2]
    frame[y : y + h, x : x + w] = patch[: frame.shape[0] - y, : frame.shape[1] - x]
    return (x + bx0, y + by0, x + bx1, y + by1)


def face_frame(
    width: int, height: int, x: int, y: int, face_height: float, *, seed: int = 0, noisy: bool = True
) -> tuple[Pixels, Box]:
    """A frame with one face pasted at (x, y), and that face's box."""
    frame = background(width, height, seed=seed, noisy=noisy)
    box = paste_face(frame, x, y, face_height)
    return frame, box


def moving_face_frames(
    count: int,
    width: int = 192,
    height: int = 144,
    face_height: float = 48,
    *,
    start: tuple[int, int] = (20, 30),
    step: tuple[int, int] = (2, 0),
    seed: int = 0,
) -> list[tuple[Pixels, Box]]:
    """Frames of one face moving across a fixed background, with its box in each frame."""
    bg = background(width, height, seed=seed)
    frames = []
    for i in range(count):
        frame = bg.copy()
        box = paste_face(frame, start[0] + step[0] * i, start[1] + step[1] * i, face_height)
        frames.append((frame, box))
    return frames


def box_array(*boxes: Box) -> npt.NDArray[np.float32]:
    """Boxes as an (N, 4) float32 array."""
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (reference formula, independent of veilwatch)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- the veil check of shared/tools/veil_check.py, reimplemented ---------------------------------


def grey(rgb: Pixels) -> npt.NDArray[np.float64]:
    """Luma as Pillow computes it, in float64."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.float64)


def detail_survival(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], h: float) -> float:
    """Normalized correlation of the high-pass detail (minus a Gaussian blur, sigma h/16) of a and b."""
    sigma = max(1.0, h / 16.0)

    def highpass(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        im = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        return x - np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float64)

    ha, hb = highpass(a), highpass(b)
    ha -= ha.mean()
    hb -= hb.mean()
    den = float(np.sqrt((ha * ha).sum() * (hb * hb).sum()))
    return float((ha * hb).sum() / den) if den > 1e-9 else 0.0


def face_detail(original: Pixels, output: Pixels, box: Sequence[float]) -> float:
    """How much of a face's fine detail survives in `output`: veiled below 0.3, intact near 1.

    As veil_check.py: the inner 80 % of the face box, compared in grey.
    """
    x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
    x0, y0 = max(0, round(x + 0.1 * w)), max(0, round(y + 0.1 * h))
    x1, y1 = min(original.shape[1], round(x + 0.9 * w)), min(original.shape[0], round(y + 0.9 * h))
    a, b = grey(original), grey(output)
    return detail_survival(a[y0:y1, x0:x1], b[y0:y1, x0:x1], h)


# --- video clips ---------------------------------------------------------------------------------


@dataclass
class ClipSpec:
    """How a test clip is encoded."""

    fps: int = 25
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    rotation: int | None = None
    audio: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    pts: Sequence[int] | None = None  # in 1/time_base units; default: one tick per frame
    time_base: Fraction | None = None
    gop: int | None = None  # frames between keyframes (default: the encoder's)


def write_clip(path: Path, frames: Iterable[Pixels], spec: ClipSpec | None = None) -> Path:
    """Encode RGB frames (all the same size) into a real video file with PyAV."""
    import av

    spec = spec or ClipSpec()
    time_base = spec.time_base or Fraction(1, spec.fps)
    with av.open(str(path), "w", options=spec.container_options) as container:
        container.metadata.update(spec.metadata)
        stream: Any = None
        audio: Any = None
        count = 0
        for i, pixels in enumerate(frames):
            if stream is None:
                stream = container.add_stream(spec.codec, rate=spec.fps)
                stream.width, stream.height = pixels.shape[1], pixels.shape[0]
                stream.pix_fmt = spec.pix_fmt
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
                if spec.codec == "libx264":
                    stream.codec_context.options = {"preset": "ultrafast"}
                if spec.gop is not None:
                    stream.codec_context.gop_size = spec.gop
                stream.metadata.update(spec.stream_metadata)
                if spec.rotation is not None:
                    stream.set_display_rotation(spec.rotation)
                audio = _add_audio(container) if spec.audio else None
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = spec.pts[i] if spec.pts is not None else i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
        if audio is not None:
            _encode_tone(container, audio, seconds=count / spec.fps)
    return path


def _add_audio(container: Any) -> Any:
    audio = container.add_stream("aac", rate=48000)
    audio.layout = "mono"
    return audio


def _encode_tone(container: Any, stream: Any, seconds: float) -> None:
    import av

    total = int(48000 * seconds)
    for start in range(0, total, 1024):
        t = np.arange(start, start + 1024)
        samples = (0.3 * np.sin(2 * np.pi * 440 * t / 48000)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@dataclass(frozen=True)
class ClipFacts:
    """What a video file holds, read back with PyAV (coded frames, not rotated)."""

    frames: list[Pixels]
    pts: list[int]
    rotations: list[int]
    time_base: Fraction
    rate: Fraction | None
    stream_duration: int | None
    duration_s: float | None
    audio_streams: int
    audio_duration_s: float | None
    other_streams: int
    container_metadata: dict[str, str]
    stream_metadata: dict[str, str]


def read_clip(path: Path) -> ClipFacts:
    """Decode every video frame of a file and collect its facts."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames: list[Pixels] = []
        pts: list[int] = []
        rotations: list[int] = []
        for frame in container.decode(video):
            frames.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
            pts.append(int(frame.pts or 0))
            rotations.append(int(frame.rotation or 0))
        audio = container.streams.audio
        audio_duration = None
        if audio and audio[0].duration and audio[0].time_base:
            audio_duration = float(audio[0].duration * audio[0].time_base)
        return ClipFacts(
            frames=frames,
            pts=pts,
            rotations=rotations,
            time_base=Fraction(video.time_base or 0),
            rate=Fraction(video.average_rate) if video.average_rate else None,
            stream_duration=video.duration,
            duration_s=container.duration / 1_000_000 if container.duration else None,
            audio_streams=len(audio),
            audio_duration_s=audio_duration,
            other_streams=len(container.streams) - len(container.streams.video) - len(audio),
            container_metadata={str(k): str(v) for k, v in container.metadata.items()},
            stream_metadata={str(k): str(v) for k, v in video.metadata.items()},
        )


# --- image metadata ------------------------------------------------------------------------------


def exif_with_gps_and_thumbnail(orientation: int = 1) -> bytes:
    """An APP1 EXIF payload (b'Exif\\0\\0' + TIFF) with camera make, orientation, a GPS position
    and an embedded JPEG thumbnail (IFD1), written by hand so every part is really there."""
    thumb_io = io.BytesIO()
    Image.fromarray(cv2.resize(_astronaut(), (64, 64)), "RGB").save(thumb_io, "JPEG", quality=70)
    thumbnail = thumb_io.getvalue()
    make = b"SpyCam Inc\0"

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")

    # Layout: header(8) | IFD0 (3 entries) | GPS IFD (2 entries) | IFD1 (3 entries) | data
    ifd0_at = 8
    gps_at = ifd0_at + 2 + 3 * 12 + 4
    ifd1_at = gps_at + 2 + 2 * 12 + 4
    data_at = ifd1_at + 2 + 3 * 12 + 4
    make_at = data_at
    lat_at = make_at + len(make)
    lat = struct.pack("<6I", 48, 1, 51, 1, 2959, 100)  # 48° 51' 29.59"
    thumb_at = lat_at + len(lat)
    ifd0 = (
        struct.pack("<H", 3)
        + entry(0x010F, 2, len(make), struct.pack("<I", make_at))
        + entry(0x0112, 3, 1, struct.pack("<H", orientation))
        + entry(0x8825, 4, 1, struct.pack("<I", gps_at))
        + struct.pack("<I", ifd1_at)
    )
    gps = (
        struct.pack("<H", 2)
        + entry(0x0001, 2, 2, b"N\0")
        + entry(0x0002, 5, 3, struct.pack("<I", lat_at))
        + struct.pack("<I", 0)
    )
    ifd1 = (
        struct.pack("<H", 3)
        + entry(0x0103, 3, 1, struct.pack("<H", 6))
        + entry(0x0201, 4, 1, struct.pack("<I", thumb_at))
        + entry(0x0202, 4, 1, struct.pack("<I", len(thumbnail)))
        + struct.pack("<I", 0)
    )
    tiff = b"II*\0" + struct.pack("<I", ifd0_at) + ifd0 + gps + ifd1 + make + lat + thumbnail
    return b"Exif\0\0" + tiff


XMP_PACKET = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="secret-photographer"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


# --- the CLI -------------------------------------------------------------------------------------


def cli_env(columns: int | None = None) -> dict[str, str]:
    """Environment for CLI subprocesses: no colour, and the terminal width rich assumes for a pipe
    (80 columns) unless `columns` says otherwise."""
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    timeout: float = 120,
    columns: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `veilwatch ARGS...` in a fresh interpreter and capture everything."""
    command = [sys.executable, "-m", "veilwatch.cli.app", *[str(a) for a in args]]
    return subprocess.run(
        command,
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=cli_env(columns),
        check=False,
    )


def error_lines(stderr: bytes) -> list[str]:
    """The lines of a run's stderr that report an error."""
    return [line for line in stderr.decode(errors="replace").splitlines() if "error:" in line]


def encode_image(pixels: Pixels, fmt: str = "JPEG", **options: Any) -> bytes:
    """Pixels encoded as an image file in memory."""
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, fmt, **options)
    return out.getvalue()


# --- a real server on loopback --------------------------------------------------------------------

# The base URL of TestClients of the room: a Host the server accepts (TestClient's own "testserver" is refused).
LOOPBACK = "http://127.0.0.1"
ROOM_SOCKET = "ws://127.0.0.1/ws/room"  # absolute: TestClient's websockets would go to "testserver"


def login_as(client: Any, name: str, password: str) -> str:
    """Log a TestClient in; it then sends the session's CSRF token with every request. Returns the token."""
    response = client.post("/api/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """Run `app` under a real uvicorn server on loopback, in a thread; yields its base URL."""
    import uvicorn

    port = port if port is not None else free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
