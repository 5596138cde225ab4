"""Shared fixtures: one real engine per session, small real media built per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ClipSpec, moving_face_frames, write_clip
from veilwatch.pipeline.engine import Engine
from veilwatch.settings import AnonymizeSettings

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The real CenterFace engine with default settings, loaded once."""
    return Engine(AnonymizeSettings())


@pytest.fixture(scope="session")
def report_engine() -> Engine:
    """The real engine with per-frame records switched on."""
    return Engine(AnonymizeSettings(report=True))


@pytest.fixture
def face_clip(tmp_path: Path) -> Path:
    """A 20-frame 192 × 144 H.264 clip of a face moving right, 25 fps."""
    frames = [pixels for pixels, _ in moving_face_frames(20)]
    return write_clip(tmp_path / "face.mp4", frames, ClipSpec())


@pytest.fixture
def shared_data() -> Iterator[Path]:
    """../shared/data beside the checkout (tests using it are skipped when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    yield SHARED_DATA
