"""Optional checks on the annotated development data beside the checkout (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import face_detail
from veilwatch.frames import Frame
from veilwatch.media.images import read_image
from veilwatch.media.video import VideoReader
from veilwatch.pipeline.engine import Engine

pytestmark = pytest.mark.shared_data


def _annotated_images(root: Path, count: int) -> list[dict[str, Any]]:
    document = json.loads((root / "faces-dev" / "annotations.json").read_text())
    chosen = []
    for entry in document["images"]:
        faces = [f for f in entry["faces"] if not f.get("invalid") and f["h"] >= 24]
        if entry["file"].startswith("images/mask/") and faces:
            chosen.append({**entry, "faces": faces})
        if len(chosen) == count:
            break
    return chosen


def test_annotated_faces_of_the_dev_set_are_veiled(engine: Engine, shared_data: Path) -> None:
    entries = _annotated_images(shared_data, 8)
    assert entries
    veiled = total = 0
    for entry in entries:
        path = shared_data / "faces-dev" / entry["file"]
        loaded = read_image(str(path))
        out = engine.image_veiler().push(Frame(0, loaded.pixels))[0].frame.pixels
        with Image.open(path) as img:
            assert loaded.pixels.shape[:2] == (img.height, img.width)
        for face in entry["faces"]:
            box = (face["x"], face["y"], face["x"] + face["w"], face["y"] + face["h"])
            veiled += face_detail(loaded.pixels, out, box) < 0.3
            total += 1
    assert veiled / total >= 0.9, (veiled, total)


def test_the_shared_videos_open_upright(shared_data: Path) -> None:
    sizes = {
        "facenet-pytorch-video.mp4": (1920, 1080),
        "face_recognition-short_hamilton_clip.mp4": (640, 360),
    }
    for name, size in sizes.items():
        with VideoReader(shared_data / "videos" / name) as reader:
            assert (reader.info.width, reader.info.height) == size
            first = next(iter(reader.frames()))
            assert first.pixels.shape == (size[1], size[0], 3)
            assert first.pixels.std() > 5  # a real picture, not a blank frame
