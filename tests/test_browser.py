"""The monitoring room in a real browser: Debian's Chromium, driven by Playwright, against the real
server on loopback with real demo cameras, real SQLite and the real model."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import face_detail, free_port, serving
from veilwatch.config import CameraConfig, ServeConfig, ServerConfig
from veilwatch.room.room import Room, open_room
from veilwatch.server.app import create_app
from veilwatch.sources.demo import DemoSource
from veilwatch.storage.users import Role

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Room]]:
    port = free_port()
    cameras = [
        CameraConfig(name="hall", source="demo:walkers?seed=1&people=3", location="Hall", purpose="test"),
        CameraConfig(name="vault", source="demo:walkers?seed=2&people=2", viewers=["operator"]),
    ]
    server_config = ServerConfig(port=port, data_dir=tmp_path_factory.mktemp("browser"))
    services = open_room(ServeConfig(server=server_config, cameras=cameras))
    for name, role in (("vera", Role.VISITOR), ("otto", Role.OPERATOR)):
        services.records.users.add(name, PASSWORD, role)
    try:
        with serving(create_app(services), port) as base:
            yield base, services
    finally:
        services.close()


def _log_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _wait(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression until it is true (our CSP forbids wait_for_function's eval)."""
    deadline = time.time() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def _image(png: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_logged_out_browser_gets_no_video(room: tuple[str, Room], browser: Any) -> None:
    base, _ = room
    page = browser.new_page()
    page.goto(f"{base}/")
    assert page.url == f"{base}/login"
    status = page.evaluate("async (u) => (await fetch(u)).status", f"{base}/api/cameras/hall/snapshot.jpg")
    assert status == 401
    stream = page.evaluate("async (u) => (await fetch(u)).status", f"{base}/api/cameras/hall/stream.mjpg")
    assert stream == 401
    page.close()


def test_grid_is_live_watchers_shown_and_permissions_kept(room: tuple[str, Room], browser: Any) -> None:
    base, services = room
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _log_in(page, base, "vera")
    tile = page.locator('[data-camera="hall"] img')
    tile.wait_for()
    _wait(page, "document.querySelector('[data-camera=hall] img').naturalWidth > 0")
    assert page.locator("[data-camera]").count() == 1  # the operators-only camera is not offered
    first = _image(tile.screenshot())
    time.sleep(1.0)
    second = _image(tile.screenshot())
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.5  # the picture moves
    _wait(page, "document.querySelector('[data-camera=hall] .watchers').textContent.includes('1 visitor')", 5.0)
    assert services.cameras["hall"].presence.watchers("hall").visitors >= 1
    vault = page.evaluate("async (u) => (await fetch(u)).status", f"{base}/api/cameras/vault/snapshot.jpg")
    assert vault == 404
    page.close()


def test_screenshot_shows_the_demo_faces_veiled(room: tuple[str, Room], browser: Any) -> None:
    base, services = room
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _log_in(page, base, "vera")
    page.goto(f"{base}/cameras/hall")
    view = page.locator("#live")
    _wait(page, "document.querySelector('#live').naturalWidth > 0")
    demo = services.cameras["hall"].pipeline.source
    assert isinstance(demo, DemoSource)
    checked = 0
    for _ in range(5):
        # On a loaded machine a frame may miss the veiling deadline and be withheld (shown grey):
        # that is the fail-closed path, not this test's subject, so wait for a veiled one.
        deadline = time.monotonic() + 60
        while True:
            shot = _image(view.screenshot())
            published = services.cameras["hall"].pipeline.latest()
            assert published is not None
            if not published.withheld or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not published.withheld
        height, width = shot.shape[:2]
        # The screenshot may show the frame published just before or after the one we read.
        candidates = [published.source_seq + d for d in (-1, 0, -2, 1)]
        raw = {seq: np.asarray(Image.fromarray(demo.frame(seq)).resize((width, height))) for seq in candidates}
        for box in demo.ground_truth(published.source_seq):
            sx, sy = width / 1280, height / 720
            scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
            if scaled[3] - scaled[1] < 12:
                continue  # too small on screen to measure detail
            detail = min(face_detail(raw[seq], shot, scaled) for seq in candidates)
            assert detail < 0.3, (published.source_seq, box, detail)
            checked += 1
        time.sleep(0.5)
    assert checked >= 5
    page.close()


def test_steering_moves_the_view(room: tuple[str, Room], browser: Any) -> None:
    base, services = room
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _log_in(page, base, "vera")
    page.goto(f"{base}/cameras/hall")
    _wait(page, "document.querySelector('#live').naturalWidth > 0")
    page.click("#request")
    _wait(page, "document.querySelector('#lease').textContent.startsWith('you steer')", 5.0)
    before = _image(page.locator("#live").screenshot())
    for wanted in (1.5, 2.0):  # one click at a time: a busy machine may still be answering the last one
        page.click("[aria-label='zoom in']")
        deadline = time.time() + 10
        while services.cameras["hall"].pipeline.view.zoom < wanted and time.time() < deadline:
            time.sleep(0.05)
    assert services.cameras["hall"].pipeline.view.zoom >= 2
    time.sleep(1.0)
    after = _image(page.locator("#live").screenshot())
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 3  # the view changed
    assert "ptz.move" in {a.kind for a in services.records.actions.recent(20, camera="hall")}
    page.click("[aria-label='reset view']")
    page.click("#release")
    page.close()
