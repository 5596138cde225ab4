"""Accountability on the real server: every action leaves a log leaf before it takes effect, a log
that cannot append refuses the action, exports verify offline, and the transparency page is public.

Real services (demo camera, real model, real SQLite with the real Merkle log, a real 2-of-3 vault)
behind the real app, through Starlette's TestClient.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.testclient import TestClient

from tests.helpers import LOOPBACK, login_as
from veilwatch.audit.merkle import leaf_hash, verify_inclusion
from veilwatch.audit.note import Checkpoint, Verifier, open_note
from veilwatch.clips.export import ExportError, verify_export
from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, VaultConfig
from veilwatch.room.room import Room, open_room
from veilwatch.server.app import create_app
from veilwatch.server.auth import LoginThrottle, is_public
from veilwatch.storage.users import Role
from veilwatch.vault.bundle import HolderSpec, KdfParams, create_vault
from veilwatch.vault.unmask import UnmaskRequest, approve

PASSWORD = "correct horse battery"
HOLDERS = ("ana", "ben", "chi")
LIGHT_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)


def _passphrase(name: str) -> str:
    return f"passphrase of {name}!"


@pytest.fixture(scope="module")
def shares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    folder = tmp_path_factory.mktemp("vault")
    vault, bundles = create_vault(
        [HolderSpec(n, _passphrase(n)) for n in HOLDERS], 2, datetime.now(UTC).date(), days=3, kdf=LIGHT_KDF
    )
    (folder / "vault.json").write_bytes(vault.to_json())
    return folder / "vault.json", bundles


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, shares: tuple[Path, list[bytes]]) -> Iterator[Room]:
    cameras = [
        CameraConfig(name="hall", source="demo:walkers?seed=1&people=3", location="Hall", purpose="safety"),
        CameraConfig(name="vault", source="demo:walkers?seed=2&people=2", viewers=["operator"], steerable=False),
    ]
    server = ServerConfig(data_dir=tmp_path_factory.mktemp("room"), segment_seconds=2)
    running = open_room(ServeConfig(server=server, vault=VaultConfig(public_file=shares[0]), cameras=cameras))
    for name, role in (("ada", Role.ADMIN), ("otto", Role.OPERATOR), ("vera", Role.VISITOR)):
        running.records.users.add(name, PASSWORD, role)
    deadline = time.time() + 40
    while not _segments(running) and time.time() < deadline:
        time.sleep(0.3)
    yield running
    running.close()


def _segments(services: Room, camera: str = "hall") -> list[Any]:
    return [s for s in services.segments.list(camera, 0, time.time()) if s.status == "complete"]


@pytest.fixture()
def client(services: Room) -> TestClient:
    return TestClient(create_app(services, throttle=LoginThrottle(free=50)), base_url=LOOPBACK)


def _login(client: TestClient, name: str) -> str:
    return login_as(client, name, PASSWORD)


def _new_kinds(services: Room, before: int) -> list[str]:
    return [
        json.loads(entry)["kind"] for entry in services.records.audit.entries(before, services.records.audit.size())
    ]


# --- every action leaves a leaf -------------------------------------------------------------------


def _actions(services: Room, shares: tuple[Path, list[bytes]]) -> dict[tuple[str, str], tuple[Callable[..., Any], str]]:
    """Each action route: how to call it (logged in as ada, the admin) and the leaf kind it must leave."""
    segment = _segments(services)[0]
    start, end = segment.start_at, segment.end_at

    def ask(c: TestClient) -> Any:
        return c.post("/api/unmask", json={"camera": "hall", "start": start, "end": end, "reason": "walk test reason"})

    def pending_id(c: TestClient) -> str:
        return str(ask(c).json()["id"])

    def hand_in(c: TestClient) -> Any:
        request_id = pending_id(c)
        canonical = c.get(f"/api/unmask/{request_id}/request.json").content
        made = approve(shares[1][0], _passphrase("ana"), UnmaskRequest.from_json(canonical), int(time.time()))
        return c.post(f"/api/unmask/{request_id}/approvals", content=made.to_json())

    def with_share(c: TestClient) -> Any:
        import base64

        body = {"share": base64.b64encode(shares[1][1]).decode(), "passphrase": _passphrase("ben")}
        return c.post(f"/api/unmask/{pending_id(c)}/approve-with-share", json=body)

    def unmasked(c: TestClient) -> Any:
        request_id = pending_id(c)
        request = UnmaskRequest.from_json(c.get(f"/api/unmask/{request_id}/request.json").content)
        for holder in (0, 2):
            made = approve(shares[1][holder], _passphrase(HOLDERS[holder]), request, int(time.time()))
            assert c.post(f"/api/unmask/{request_id}/approvals", content=made.to_json()).status_code == 200
        return c.get(f"/api/unmask/{request_id}/clip.mp4")

    def take_over_from_vera(c: TestClient) -> Any:
        visitor = TestClient(c.app, base_url=LOOPBACK)
        _login(visitor, "vera")
        assert visitor.post("/api/cameras/hall/control/request").status_code == 200
        return c.post("/api/cameras/hall/control/takeover")

    def release_then_request(c: TestClient) -> Any:
        c.post("/api/cameras/hall/control/release")  # vera, waiting first, gets her turn back …
        visitor = TestClient(c.app, base_url=LOOPBACK)
        _login(visitor, "vera")
        visitor.post("/api/cameras/hall/control/release")  # … and leaves: the camera is free
        return c.post("/api/cameras/hall/control/request")

    def export(c: TestClient) -> Any:
        return c.post("/api/cameras/hall/exports", json={"start": start, "end": end})

    hall = "/api/cameras/hall"
    wrong_setup = {"name": "x", "password": "y" * 12, "token": "?"}
    return {
        ("POST", "/api/login"): (_post("/api/login", json={"name": "ada", "password": PASSWORD}), "login"),
        ("POST", "/api/logout"): (_post("/api/logout"), "logout"),
        ("POST", "/api/setup"): (
            _post("/api/setup", json=wrong_setup),
            "auth.denied",
        ),
        ("GET", "/api/cameras/{name}/stream.mjpg"): (_stream_once, "view.start"),
        ("GET", "/api/cameras/{name}/snapshot.jpg"): (_get(f"{hall}/snapshot.jpg"), "view.snapshot"),
        ("POST", "/api/cameras/{name}/control/takeover"): (take_over_from_vera, "control.takeover"),
        ("POST", "/api/cameras/{name}/control/request"): (release_then_request, "control.granted"),
        ("POST", "/api/cameras/{name}/ptz"): (_post(f"{hall}/ptz", json={"zoom": 1}), "ptz.move"),
        ("POST", "/api/cameras/{name}/control/release"): (_post(f"{hall}/control/release"), "control.released"),
        ("GET", "/api/recordings/{segment_id}.mp4"): (_get(f"/api/recordings/{segment.id}.mp4"), "playback"),
        ("POST", "/api/cameras/{name}/exports"): (export, "export"),
        ("GET", "/api/exports/{file_name}"): (lambda c: c.get(export(c).json()["clip_url"]), "export.fetch"),
        ("POST", "/api/unmask"): (ask, "unmask.request"),
        ("POST", "/api/unmask/{request_id}/approvals"): (hand_in, "unmask.approve"),
        ("POST", "/api/unmask/{request_id}/approve-with-share"): (with_share, "unmask.approve"),
        ("GET", "/api/unmask/{request_id}/clip.mp4"): (unmasked, "unmask.fetch"),
        # A witness's cosignature is not an action on the cameras: it is checked and published, not logged.
        ("POST", "/api/log/cosignature"): (_post("/api/log/cosignature", content=b"not a note"), ""),
    }


def _post(path: str, **kwargs: Any) -> Callable[[TestClient], Any]:
    return lambda client: client.post(path, **kwargs)


def _get(path: str) -> Callable[[TestClient], Any]:
    return lambda client: client.get(path)


def _stream_once(client: TestClient) -> Any:
    with client.stream("GET", "/api/cameras/hall/stream.mjpg") as response:
        next(response.iter_bytes())
        return response


def test_every_action_route_leaves_its_leaf_before_it_takes_effect(
    client: TestClient, services: Room, shares: tuple[Path, list[bytes]]
) -> None:
    actions = _actions(services, shares)
    app_routes = {
        (method, route.path)
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method == "POST" or route.path.endswith((".mp4", ".mjpg", ".jpg")) or "/exports/" in route.path
    }
    assert app_routes == set(actions), "a state-changing or media route without an entry in this table"
    _login(client, "ada")
    for (method, path), (call, kind) in actions.items():
        before = services.records.audit.size()
        response = call(client)
        kinds = _new_kinds(services, before)
        if kind:
            assert kind in kinds, (method, path, response.status_code, kinds)
        if path == "/api/login":
            client.headers["X-CSRF-Token"] = response.json()["csrf"]
        if path == "/api/logout":
            _login(client, "ada")
    stopped = _new_kinds(services, 0)
    assert "view.stop" in stopped and "config.load" in stopped
    # The records name actions, never secrets: no password or passphrase in any leaf.
    everything = b"".join(services.records.audit.entries(0, services.records.audit.size()))
    assert PASSWORD.encode() not in everything and b"passphrase of" not in everything
    # Visitors are members of the public: the public log names them only by a keyed pseudonym.
    assert b'"vera"' not in everything and b"visitor-" in everything
    assert b'"ada"' in everything  # staff are named: the watched may know their watchers
    routes = client.app.routes  # type: ignore[attr-defined]
    assert all(not is_public(route.endpoint) for route in routes if getattr(route, "path", "") == "/api/unmask")


def test_refusals_are_logged_too(client: TestClient, services: Room) -> None:
    # A client of its own: anonymous refusals make one leaf per client a minute (the rest are counted).
    client = TestClient(client.app, base_url=LOOPBACK, client=("192.0.2.241", 50000))
    before = services.records.audit.size()
    typo = client.post("/api/login", json={"name": "hunter2-my-password", "password": "whatever it is"})
    assert typo.status_code == 401
    failed = json.loads(services.records.audit.entries(before, before + 1)[0])
    assert failed["kind"] == "login.failed" and failed["details"]["attempt"].startswith("attempt-")
    assert b"hunter2" not in b"".join(services.records.audit.entries(before, services.records.audit.size()))
    assert client.get("/api/cameras").status_code == 401
    _login(client, "vera")
    assert client.get("/api/cameras/vault/snapshot.jpg").status_code == 404  # not hers: logged, answered as missing
    assert client.get("/api/unmask").status_code == 403
    kinds = _new_kinds(services, before)
    assert kinds.count("auth.denied") >= 3


def test_a_path_that_leads_nowhere_leaves_no_leaf(client: TestClient, services: Room) -> None:
    before = services.records.audit.size()
    # Every browser on the public page asks for /favicon.ico; scanners ask for anything. No route, no leaf:
    # else anyone could grow the log for ever and write what they like into it.
    assert client.get("/favicon.ico").status_code == 404
    assert client.post("/wp-login.php", content=b"x").status_code == 404
    assert client.get("/" + "anything-typed-in/" * 10).status_code == 404
    fresh = TestClient(client.app, base_url=LOOPBACK, client=("192.0.2.242", 50000))  # its first refusal
    assert fresh.get("/api/cameras").status_code == 401  # a real route still refuses, and is logged
    entries = b"".join(services.records.audit.entries(before, services.records.audit.size()))
    assert b"favicon" not in entries and b"wp-login" not in entries and b"anything-typed-in" not in entries
    assert b'"path":"/api/cameras"' in entries


def test_a_log_that_cannot_append_refuses_the_action(client: TestClient, services: Room) -> None:
    _login(client, "otto")
    client.post("/api/cameras/hall/control/takeover")
    view = services.cameras["hall"].pipeline.view
    trigger = "CREATE TRIGGER no_room BEFORE INSERT ON audit_leaves BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    services.records.db.write(lambda s: s.execute(text(trigger)))
    try:
        moved = client.post("/api/cameras/hall/ptz", json={"pan": 0.5})
        assert moved.status_code == 503 and "log" in moved.json()["detail"]
        assert services.cameras["hall"].pipeline.view == view  # not steered: the move was never logged
        login = client.post("/api/login", json={"name": "vera", "password": PASSWORD})
        assert login.status_code == 503 and "set-cookie" not in login.headers  # no session without its leaf
        assert client.get("/api/cameras/hall/snapshot.jpg").status_code == 503  # no picture either
    finally:
        services.records.db.write(lambda s: s.execute(text("DROP TRIGGER no_room")))
    assert client.post("/api/cameras/hall/ptz", json={"pan": 0.1}).status_code == 200
    client.post("/api/cameras/hall/control/release")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reason": "a long reason. " * 100}, "reason"),  # 1,500 characters: the form takes 2,000, a leaf 1,024
        ({"start": -1e12, "end": -1e12 + 60}, "1970"),  # so far back that its day is no date
        ({"region": [0, 0, 200_000, 10]}, "region"),  # stored, it would break every page that lists requests
    ],
)
def test_an_unacceptable_unmask_request_is_one_line_4xx(
    client: TestClient, services: Room, change: dict[str, Any], message: str
) -> None:
    _login(client, "otto")
    segment = _segments(services)[0]
    body = {"camera": "hall", "start": segment.start_at, "end": segment.end_at, "reason": "a stated reason", **change}
    answer = client.post("/api/unmask", json=body)  # TestClient re-raises a server error: a 500 fails here
    assert answer.status_code == 400 and message in answer.json()["detail"], answer.text
    assert client.get("/api/unmask").status_code == 200 and client.get("/api/transparency").status_code == 200


NO_ROOM = "CREATE TRIGGER no_room BEFORE INSERT ON audit_leaves BEGIN SELECT RAISE(ABORT, 'disk says no'); END"


def test_first_run_set_up_makes_no_admin_without_its_leaf(tmp_path: Path) -> None:
    from typing import cast

    from veilwatch.pipeline.engine import Engine

    config = ServeConfig(server=ServerConfig(data_dir=tmp_path))  # no camera: no model is loaded
    fresh = open_room(config, engine_factory=lambda _: cast(Engine, None))
    try:
        client = TestClient(create_app(fresh), base_url=LOOPBACK)
        body = {"name": "root", "password": PASSWORD, "token": fresh.setup.token}
        fresh.records.db.write(lambda s: s.execute(text(NO_ROOM)))
        refused = client.post("/api/setup", json=body)
        assert refused.status_code == 503 and "set-cookie" not in refused.headers
        assert fresh.records.users.count() == 0  # no admin whose creation the log never heard of
        fresh.records.db.write(lambda s: s.execute(text("DROP TRIGGER no_room")))
        made = client.post("/api/setup", json=body)
        assert made.status_code == 200 and fresh.records.users.count() == 1
        assert _new_kinds(fresh, 0)[-1] == "user.create"
        assert client.post("/api/setup", json=body).status_code == 403  # once only
    finally:
        fresh.close()


# --- exports ------------------------------------------------------------------------------------


def test_an_export_verifies_offline_and_a_changed_clip_does_not(
    client: TestClient, services: Room, tmp_path: Path
) -> None:
    _login(client, "otto")
    segment = _segments(services)[0]
    made = client.post("/api/cameras/hall/exports", json={"start": segment.start_at, "end": segment.end_at})
    assert made.status_code == 200, made.text
    clip = client.get(made.json()["clip_url"]).content
    manifest = client.get(made.json()["manifest_url"]).content
    key = services.records.audit.verifier_key
    checked = verify_export(clip, manifest, key)
    assert checked.camera == "hall" and checked.exported_by == "otto" and checked.log_index == made.json()["log_index"]
    # The manifest's proof is a real RFC 6962 inclusion proof under the signed checkpoint.
    log = json.loads(manifest)["log"]
    checkpoint = Checkpoint.parse(open_note(log["checkpoint"], [Verifier.parse(key)]).text)
    entry = services.records.audit.entries(log["index"], log["index"] + 1)[0]
    proof = services.records.audit.inclusion(log["index"], checkpoint.size)
    verify_inclusion(leaf_hash(entry), log["index"], checkpoint.size, proof, checkpoint.root)
    # One changed frame (re-encoded with a pixel block altered) fails; so does a foreign key.
    changed = _change_one_frame(clip, tmp_path)
    with pytest.raises(ExportError, match="not the exported one"):
        verify_export(changed, manifest, key)
    from veilwatch.audit.note import Signer

    with pytest.raises(ExportError, match="not signed"):
        verify_export(clip, manifest, Signer.generate(services.records.audit.origin).verifier.vkey)
    # What the check reports comes from the signed entry: a manifest that claims another range fails,
    # and a malformed one is one ExportError line, never a traceback.
    for path, value, message in [
        (("start_us",), 0, "time range"),
        (("end_us",), json.loads(manifest)["end_us"] + 1, "time range"),
        (("log", "index"), str(log["index"]), "malformed"),
        (("log", "tree_size"), None, "malformed"),
        (("log", "inclusion_proof"), "AAAA", "malformed"),
        (("log",), [], "lacks"),
    ]:
        edited = json.loads(manifest)
        *parents, leaf = path
        target = edited
        for name in parents:
            target = target[name]
        target[leaf] = value
        with pytest.raises(ExportError, match=message):
            verify_export(clip, json.dumps(edited).encode(), key)
    # The CLI says the same, offline.
    (tmp_path / "clip.mp4").write_bytes(clip)
    (tmp_path / "changed.mp4").write_bytes(changed)
    (tmp_path / "clip.manifest.json").write_bytes(manifest)
    manifest_file = str(tmp_path / "clip.manifest.json")
    ok = _veilwatch("audit", "verify-export", str(tmp_path / "clip.mp4"), "--manifest", manifest_file, "--key", key)
    assert ok.returncode == 0 and "verified" in ok.stdout, ok.stderr
    bad = _veilwatch("audit", "verify-export", str(tmp_path / "changed.mp4"), "--manifest", manifest_file, "--key", key)
    assert bad.returncode == 8 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_an_export_is_served_only_to_staff_who_may_watch_its_camera(client: TestClient, services: Room) -> None:
    if services.records.users.by_name("aldo") is None:
        services.records.users.add("aldo", PASSWORD, Role.AUDITOR)  # staff, but only operators watch the "vault" camera
    deadline = time.time() + 30
    while not (recorded := _segments(services, "vault")) and time.time() < deadline:
        time.sleep(0.3)
    _login(client, "otto")
    range_ = {"start": recorded[0].start_at, "end": recorded[0].end_at}
    made = client.post("/api/cameras/vault/exports", json=range_).json()
    auditor = TestClient(client.app, base_url=LOOPBACK)
    _login(auditor, "aldo")
    assert auditor.get("/api/cameras/vault/recordings").status_code == 404
    # The export's id is in the public log, so knowing it must not be enough.
    for url in (made["clip_url"], made["manifest_url"]):
        assert auditor.get(url).status_code == 404, url
        assert client.get(url).status_code == 200, url


def _change_one_frame(clip: bytes, tmp_path: Path) -> bytes:
    import io

    import av

    with av.open(io.BytesIO(clip), mode="r") as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    frames[len(frames) // 2][10:30, 10:30] = 255
    from veilwatch.clips.recorded import TimedFrame, encode_mp4

    data, _ = encode_mp4([TimedFrame(i / 10, np.asarray(f, np.uint8)) for i, f in enumerate(frames)], 10.0)
    return data


def _veilwatch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "veilwatch.cli.app", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


# --- the transparency page ----------------------------------------------------------------------


def test_the_transparency_data_is_public_and_names_no_visitor(client: TestClient, services: Room) -> None:
    _login(client, "vera")
    with client.stream("GET", "/api/cameras/hall/stream.mjpg") as response:
        next(response.iter_bytes())  # vera watched (a "view.start" leaf, shown as "a visitor")
    seat = services.cameras["hall"].presence.join(
        "hall", "vera", "visitor"
    )  # and watches now (TestClient ends streams early)
    try:
        public = (
            TestClient(client.app, base_url=LOOPBACK).get("/api/transparency").json()
        )  # another browser, logged out
    finally:
        services.cameras["hall"].presence.leave(seat)
    hall = next(c for c in public["cameras"] if c["name"] == "hall")
    assert hall["location"] == "Hall" and hall["purpose"] == "safety" and hall["watching"] >= 1
    assert hall["retention_days"] == 7 and hall["steerable"] is True
    assert public["vault"]["k"] == 2 and public["vault"]["n"] == 3
    assert "vera" not in json.dumps(public["watched"]) and "a visitor" in json.dumps(public["watched"])
    opened = open_note(public["log"]["checkpoint"], [Verifier.parse(public["log"]["verifier_key"])])
    assert Checkpoint.parse(opened.text).size >= 1
