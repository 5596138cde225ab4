"""Shared fixtures: one real engine per session, small real media built per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ClipSpec, moving_face_frames, write_clip
from veilwatch.pipeline.engine import Engine
from veilwatch.settings import AnonymizeSettings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's package
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()
