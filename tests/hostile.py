"""Hostile media, made on the spot: small valid files (Pillow, PyAV) and what damage makes of them.

Shared by the fuzz benchmark (`bench/fuzz.py`, thousands of files) and the test suite (a few dozen,
seeded). Nothing is downloaded: every seed file is encoded here.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import cast

import numpy as np
from PIL import Image

# extension → Pillow format of the still-image seeds
IMAGE_SEEDS = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF", "webp": "WEBP", "bmp": "BMP", "avif": "AVIF"}
# extension → (FFmpeg container, encoder) of the video seeds
VIDEO_SEEDS = {
    "mp4": ("mp4", "libx264"),
    "mkv": ("matroska", "libx264"),
    "webm": ("webm", "libvpx-vp9"),
    "ts": ("mpegts", "libx264"),
    "gif": ("gif", "gif"),
}
SEED_SIZE = (64, 48)  # width, height: small, so thousands of files run in minutes
SEED_FRAMES = 12


@dataclass(frozen=True)
class HostileFile:
    """One fuzz case: a file name (its extension matters) and its bytes."""

    name: str
    data: bytes
    mutation: str


def _pixels(seed: int, width: int = SEED_SIZE[0], height: int = SEED_SIZE[1]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    noise = rng.integers(0, 60, (height, width, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def encode_still(fmt: str, seed: int = 0) -> bytes:
    """A small valid still image in a Pillow format."""
    out = io.BytesIO()
    Image.fromarray(_pixels(seed), "RGB").save(out, fmt)
    return out.getvalue()


def encode_video(container: str, codec: str, frames: int = SEED_FRAMES) -> bytes:
    """A small valid video (noisy gradient frames at 25 fps) in an FFmpeg container."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = cast("av.VideoStream", muxer.add_stream(codec, rate=25))
        stream.width, stream.height = SEED_SIZE
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        if codec.startswith("libvpx"):
            stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_pixels(i), format="rgb24")
            muxer.mux(stream.encode(frame))
        muxer.mux(stream.encode(None))
    return out.getvalue()


@cache
def seeds() -> dict[str, bytes]:
    """One valid file per extension (made once per process)."""
    made = {ext: encode_still(fmt) for ext, fmt in IMAGE_SEEDS.items()}
    made.update({ext: encode_video(*spec) for ext, spec in VIDEO_SEEDS.items()})
    return made


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` × `height` RGB pixels (its data holds one row at most)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 3, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and only image declare `width` × `height` pixels, with almost no data."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b";"


def bmp_declaring(width: int, height: int) -> bytes:
    """A BMP header declaring `width` × `height` 24-bit pixels, with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def tiff_with_text_strip_offsets() -> bytes:
    """A TIFF whose StripOffsets tag is typed as text: Pillow raises TypeError while decoding it."""
    data = bytearray(encode_still("TIFF"))
    first_ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, first_ifd)[0]):
        entry = first_ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 2)  # type 2: ASCII
    return bytes(data)


def avif_without_primary_item() -> bytes:
    """An AVIF whose primary item points nowhere: libavif raises RuntimeError through Pillow."""
    data = bytearray(encode_still("AVIF"))
    at = data.index(b"pitm") + 8  # after the box type and its version/flags
    data[at : at + 2] = b"\x77\x77"
    return bytes(data)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, max(1, len(data)))]


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]


_DECLARING: dict[str, Callable[[int, int], bytes]] = {"png": png_declaring, "gif": gif_declaring, "bmp": bmp_declaring}


def _huge(rng: random.Random) -> tuple[str, bytes]:
    width, height = rng.choice([(1, 100_000_000), (100_000, 100_000), (20_000, 20_000), (12_000, 10_000), (65_535, 2)])
    ext = rng.choice(sorted(_DECLARING))
    if ext != "png":  # GIF and BMP store 16-bit sizes
        width, height = min(width, 65_535), min(height, 65_535)
    return ext, _DECLARING[ext](width, height)


MUTATIONS = ("truncate", "flip", "insert", "wrong-extension", "huge", "empty", "random", "crafted")
WEIGHTS = (30, 30, 20, 6, 5, 2, 5, 2)


def hostile_file(index: int, rng: random.Random) -> HostileFile:
    """One fuzz case, drawn from `rng`."""
    mutation = rng.choices(MUTATIONS, WEIGHTS)[0]
    made = seeds()
    ext = rng.choice(sorted(made))
    data = made[ext]
    if mutation == "truncate":
        data = _truncate(data, rng)
    elif mutation == "flip":
        data = _flip(data, rng)
    elif mutation == "insert":
        data = _insert(data, rng)
    elif mutation == "wrong-extension":
        ext = rng.choice([e for e in sorted(made) if e != ext])
    elif mutation == "huge":
        ext, data = _huge(rng)
    elif mutation == "empty":
        data = b""
    elif mutation == "random":
        data = rng.randbytes(rng.randint(1, 4096))
    else:
        ext, data = rng.choice([("tif", tiff_with_text_strip_offsets()), ("avif", avif_without_primary_item())])
    return HostileFile(f"{index:05d}-{mutation}.{ext}", data, mutation)


def hostile_corpus(count: int, seed: int) -> Iterator[HostileFile]:
    """`count` fuzz cases, the same ones for the same seed."""
    rng = random.Random(seed)
    for index in range(count):
        yield hostile_file(index, rng)
