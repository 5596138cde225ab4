"""Unmasking with K = 2 of N = 3 key holders, end to end on the real server with a real vault: in
Chromium (Playwright, share files uploaded with passphrases) and through the CLI (`veilwatch unmask`,
`veilwatch vault approve`, offline); and the public transparency page showing it all, logged out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import CHROMIUM
from tests.helpers import free_port, serving
from tests.test_browser import PASSWORD, _log_in, _wait
from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, VaultConfig
from veilwatch.room.room import Room, open_room
from veilwatch.server.app import create_app
from veilwatch.storage.users import Role
from veilwatch.vault.bundle import HolderSpec, KdfParams, create_vault

HOLDERS = ("ana", "ben", "chi")
LIGHT_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def _passphrase(name: str) -> str:
    return f"passphrase of {name}!"


@pytest.fixture(scope="module")
def vault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vault")
    vault, bundles = create_vault(
        [HolderSpec(n, _passphrase(n)) for n in HOLDERS], 2, datetime.now(UTC).date(), days=3, kdf=LIGHT_KDF
    )
    (folder / "vault.json").write_bytes(vault.to_json())
    for name, bundle in zip(HOLDERS, bundles, strict=True):
        (folder / f"{name}.share").write_bytes(bundle)
    return folder


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, vault_dir: Path) -> Iterator[tuple[str, Room]]:
    port = free_port()
    cameras = [CameraConfig(name="hall", source="demo:walkers?seed=3&people=3", location="Hall", purpose="test")]
    server = ServerConfig(port=port, data_dir=tmp_path_factory.mktemp("unmask"), segment_seconds=2)
    config = ServeConfig(server=server, vault=VaultConfig(public_file=vault_dir / "vault.json"), cameras=cameras)
    services = open_room(config)
    services.records.users.add("otto", PASSWORD, Role.OPERATOR)
    try:
        with serving(create_app(services), port) as base:
            # Record a few seconds, so that a complete segment and its sealed faces exist.
            deadline = time.time() + 30
            while services.faces.count() < 2 and time.time() < deadline:
                time.sleep(0.2)
            yield base, services
    finally:
        services.close()


def _recorded_range(services: Room) -> tuple[float, float]:
    segments = [s for s in services.segments.list("hall", 0, time.time()) if s.status == "complete"]
    assert segments, "nothing recorded yet"
    first = segments[0]
    assert first.end_at is not None
    return first.start_at, first.end_at


def _frames(data: bytes) -> list[np.ndarray[Any, Any]]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _revealed(services: Room, clip: bytes, start: float, end: float) -> float:
    """How far the clip differs from the veiled recording of the same range (0: nothing revealed)."""
    from veilwatch.clips.recorded import recorded_frames

    veiled = [f.pixels for f in recorded_frames(services.segments, "hall", start, end)]
    unmasked = _frames(clip)
    assert len(unmasked) == len(veiled) > 0
    return max(float(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(veiled, unmasked, strict=True))


def test_unmask_in_the_browser_with_two_of_three_holders(room: tuple[str, Room], vault_dir: Path, browser: Any) -> None:
    base, services = room
    start, end = _recorded_range(services)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _log_in(page, base, "otto")
    page.goto(f"{base}/unmask")
    _wait(page, "document.querySelector('#camera').options.length > 0")

    def local(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S")

    page.fill("#start", local(start + 1))
    page.fill("#end", local(end - 0.01))
    page.fill("#reason", "browser test: an incident reported at the hall")
    page.click("#submit")
    _wait(page, "document.querySelectorAll('#requests tr').length > 0")
    for holder in ("ana", "chi"):
        page.click("#requests tr button.approve")
        page.set_input_files("#share", str(vault_dir / f"{holder}.share"))
        page.fill("#passphrase", _passphrase(holder))
        page.click("#approve-submit")
        _wait(page, "document.querySelector('#approve').hidden", 60)
    _wait(page, "document.querySelector('#requests a.clip') !== null", 60)
    href = page.get_attribute("#requests a.clip", "href")
    response = page.request.get(f"{base}{href}")
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    request_id = href.split("/")[3]
    stored = services.unmasks.get(request_id)
    assert stored is not None and stored.status == "executed" and stored.approvers == ("ana", "chi")
    assert _revealed(services, response.body(), stored.start_at, stored.end_at) > 60  # faces put back
    kinds = [a.kind for a in services.records.actions.recent(50)]
    for kind in ("unmask.request", "unmask.approve", "unmask.execute", "unmask.fetch"):
        assert kind in kinds
    page.close()

    # The people filmed see it, logged out: the camera, the reason, the approvers, the checkpoint.
    public = browser.new_page()
    public.goto(f"{base}/transparency")
    _wait(public, "document.querySelectorAll('#unmasks tr').length > 0 && document.querySelector('#vkey').textContent")
    text = public.inner_text("main")
    assert "browser test: an incident reported at the hall" in text and "ana, chi" in text
    assert "Hall" in text and services.records.audit.verifier_key in text
    public.close()


def _veilwatch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "veilwatch.cli.app", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_unmask_through_the_cli_with_two_of_three_holders(
    room: tuple[str, Room], vault_dir: Path, tmp_path: Path
) -> None:
    base, services = room
    start, end = _recorded_range(services)
    request_file = tmp_path / "request.json"
    login = ("--server", base, "--user", "otto", "--password-stdin")
    asked = _veilwatch(
        "unmask", "ask", *login, "--camera", "hall", "--start", str(start), "--end", str(end),
        "--reason", "cli test: footage needed for an insurance claim", "--out", str(request_file),
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    request_id = asked.stdout.split()[1].rstrip(":")
    approvals = []
    for holder in ("ben", "chi"):
        out = tmp_path / f"{holder}.approval.json"
        made = _veilwatch(
            "vault", "approve", "--share", str(vault_dir / f"{holder}.share"), "--request", str(request_file),
            "--out", str(out), "--passphrase-stdin", stdin=_passphrase(holder) + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        approvals.append(str(out))
    wrong = _veilwatch(
        "vault", "approve", "--share", str(vault_dir / "ana.share"), "--request", str(request_file),
        "--out", str(tmp_path / "x.json"), "--passphrase-stdin", stdin="not ana's passphrase\n",
    )  # fmt: skip
    assert wrong.returncode != 0 and "passphrase" in wrong.stderr and "Traceback" not in wrong.stderr
    handed = _veilwatch("unmask", "hand-in", *login, "--request", request_id, *approvals, stdin=PASSWORD + "\n")
    assert handed.returncode == 0, handed.stderr
    replay = _veilwatch("unmask", "hand-in", *login, "--request", request_id, approvals[0], stdin=PASSWORD + "\n")
    assert replay.returncode != 0 and "Traceback" not in replay.stderr  # the request is done; no second use
    clip = tmp_path / "clip.mp4"
    fetched = _veilwatch("unmask", "fetch", *login, "--request", request_id, "--out", str(clip), stdin=PASSWORD + "\n")
    assert fetched.returncode == 0, fetched.stderr
    assert clip.stat().st_mode & 0o077 == 0  # raw footage: for the requester's eyes only, not other local users
    assert _revealed(services, clip.read_bytes(), start, end) > 60
