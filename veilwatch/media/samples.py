"""Sample media made from public-domain pictures that scikit-image ships, for demos and tests.

`skimage.data.astronaut()` is a NASA portrait (public domain) with one clear face. From it we
build a photo with EXIF and GPS tags (to show that they are stripped) and a short video in which
faces of several sizes walk across a scene, some small, some briefly hidden behind a pillar.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.media.atomic import atomic_output

Image = npt.NDArray[np.uint8]

FACE_BOX = (150, 30, 320, 230)  # x0, y0, x1, y1 of the astronaut's head in the 512x512 picture
GPS_IFD = 0x8825


def astronaut() -> Image:
    """The public-domain astronaut portrait, RGB 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut(), np.uint8)  # type: ignore[no-untyped-call]


def astronaut_head() -> Image:
    """The head-and-shoulders crop of the astronaut (RGB)."""
    x0, y0, x1, y1 = FACE_BOX
    return np.ascontiguousarray(astronaut()[y0:y1, x0:x1])


@dataclass(frozen=True)
class Walker:
    """A face crossing the scene: start and end centre (fractions of the frame) and its height (px)."""

    start: tuple[float, float]
    end: tuple[float, float]
    height: int


WALKERS = (
    Walker((0.1, 0.55), (0.9, 0.5), 160),
    Walker((0.85, 0.3), (0.2, 0.35), 60),
    Walker((0.3, 0.2), (0.6, 0.22), 24),
)


def scene(width: int, height: int) -> Image:
    """A plain, slightly textured backdrop with a pillar (which hides faces passing behind it)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(70, 160, width, dtype=np.float32)[None, :, None]
    backdrop = np.broadcast_to(ramp, (height, width, 3)) + rng.normal(0, 6, (height, width, 3))
    return np.clip(backdrop, 0, 255).astype(np.uint8)


def walkers_frame(index: int, frames: int, width: int, height: int, backdrop: Image, head: Image) -> Image:
    """Frame `index` of the sample video."""
    frame = backdrop.copy()
    t = index / max(1, frames - 1)
    for walker in WALKERS:
        cx = (walker.start[0] + (walker.end[0] - walker.start[0]) * t) * width
        cy = (walker.start[1] + (walker.end[1] - walker.start[1]) * t) * height
        w = max(2, round(walker.height * head.shape[1] / head.shape[0]))
        sprite = np.asarray(cv2.resize(head, (w, walker.height), interpolation=cv2.INTER_AREA), np.uint8)
        _paste(frame, sprite, round(cx - w / 2), round(cy - walker.height / 2))
    pillar_x = int(width * 0.62)
    frame[:, pillar_x : pillar_x + width // 20] = (90, 80, 70)
    return frame


def _paste(frame: Image, sprite: Image, x: int, y: int) -> None:
    h, w = sprite.shape[:2]
    fx0, fy0 = max(0, x), max(0, y)
    fx1, fy1 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = sprite[fy0 - y : fy1 - y, fx0 - x : fx1 - x]


def write_sample_video(path: Path, *, width: int = 960, height: int = 540, frames: int = 75, fps: int = 25) -> None:
    """A short H.264 clip of faces walking across a scene."""
    import av

    backdrop, head = scene(width, height), astronaut_head()
    with atomic_output(path, overwrite=True) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"crf": "20", "preset": "veryfast"}
        container.metadata["title"] = "veilwatch sample"
        for index in range(frames):
            image = walkers_frame(index, frames, width, height, backdrop, head)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_sample_photo(path: Path) -> None:
    """The astronaut portrait as JPEG, tagged with a camera model and GPS position."""
    from PIL import Image as PILImage

    photo = PILImage.fromarray(astronaut())
    exif = PILImage.Exif()
    exif[0x010F] = "SampleCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (39.0, 54.0, 20.0), 3: "E", 4: (116.0, 23.0, 29.0)})
    with atomic_output(path, overwrite=True) as tmp:
        photo.save(tmp, "JPEG", quality=92, exif=exif.tobytes())


def write_samples(folder: Path) -> list[Path]:
    """Write the sample photo and video into a folder; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    photo, video = folder / "astronaut.jpg", folder / "walkers.mp4"
    write_sample_photo(photo)
    write_sample_video(video)
    return [photo, video]
