"""The monitoring room's HTTP API on real services: real SQLite, real demo cameras, real model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.helpers import LOOPBACK, ROOM_SOCKET
from veilwatch.config import CameraConfig, ServeConfig, ServerConfig
from veilwatch.room.room import Room, open_room
from veilwatch.server.app import create_app
from veilwatch.server.auth import LoginThrottle, is_public
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.users import Role

PASSWORD = "correct horse battery"
PUBLIC_PATHS = {
    ("GET", "/login"),
    ("GET", "/setup"),
    ("POST", "/api/login"),
    ("POST", "/api/setup"),
    ("GET", "/health"),
    ("GET", "/transparency"),  # for the people filmed: no pictures, no visitor names
    ("GET", "/api/transparency"),
    ("GET", "/api/log/checkpoint"),  # the tamper-evident log: anyone may check it
    ("GET", "/api/log/entries"),
    ("GET", "/api/log/proof/inclusion"),
    ("GET", "/api/log/proof/consistency"),
    ("POST", "/api/log/cosignature"),  # witnesses: stored only if it verifies under a configured key
    ("GET", "/log/checkpoint"),  # the same log as C2SP tlog-tiles
    ("GET", "/log/tile/{path:path}"),
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    data = tmp_path_factory.mktemp("room")
    cameras = [
        CameraConfig(name="hall", source="demo:walkers?seed=1&people=3", location="Hall", purpose="test"),
        CameraConfig(name="vault", source="demo:walkers?seed=2&people=2", viewers=["operator"], steerable=False),
    ]
    config = ServeConfig(server=ServerConfig(data_dir=data, metrics_token="scrape-me"), cameras=cameras)
    running = open_room(config)
    for name, role in (("ada", Role.ADMIN), ("otto", Role.OPERATOR), ("vera", Role.VISITOR), ("vic", Role.VISITOR)):
        running.records.users.add(name, PASSWORD, role)
    yield running
    running.close()


@pytest.fixture()
def app_client(services: Room) -> TestClient:
    return TestClient(create_app(services, throttle=LoginThrottle(free=3, base_delay_s=60)), base_url=LOOPBACK)


def login(client: TestClient, name: str) -> str:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf"]
    return csrf


def wait_for_frame(client: TestClient, camera: str) -> bytes:
    for _ in range(100):
        response = client.get(f"/api/cameras/{camera}/snapshot.jpg")
        if response.status_code == 200:
            return response.content
        time.sleep(0.1)
    raise AssertionError(f"no frame from {camera}")


def test_every_route_requires_a_session_unless_declared_public(app_client: TestClient) -> None:
    app = app_client.app
    seen_public = set()
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            assert route.path == "/static" and is_public(route.app)
            continue
        if isinstance(route, APIWebSocketRoute):
            with pytest.raises(Exception), app_client.websocket_connect(route.path):  # noqa: B017
                pass  # closed before accept: no session
            continue
        assert isinstance(route, APIRoute) or hasattr(route, "methods")
        path = route.path.replace("{name}", "hall").replace("{segment_id}", "1")
        for method in sorted(route.methods - {"HEAD"}):
            if is_public(route.endpoint):
                seen_public.add((method, route.path))
                continue
            response = app_client.request(method, path, headers={"Accept": "application/json"})
            assert response.status_code == 401, (method, route.path, response.status_code)
    assert seen_public == PUBLIC_PATHS


def test_pages_redirect_a_browser_to_log_in(app_client: TestClient) -> None:
    response = app_client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_wrong_password_is_refused_and_throttled(app_client: TestClient, services: Room) -> None:
    for _ in range(3):  # three free failures, then even the right password must wait
        assert app_client.post("/api/login", json={"name": "vic", "password": "wrong password!"}).status_code == 401
    throttled = app_client.post("/api/login", json={"name": "vic", "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    kinds = [a.kind for a in services.records.actions.recent(20)]
    assert "login.failed" in kinds


def test_session_cookie_is_httponly_and_strict(app_client: TestClient) -> None:
    response = app_client.post("/api/login", json={"name": "vera", "password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_state_changes_need_the_csrf_token_and_our_origin(app_client: TestClient) -> None:
    csrf = login(app_client, "vera")
    url = "/api/cameras/hall/control/request"
    assert app_client.post(url).status_code == 403
    assert app_client.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
    hostile = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert app_client.post(url, headers=hostile).status_code == 403
    assert app_client.post(url, headers={"X-CSRF-Token": csrf}).status_code == 200
    app_client.post("/api/cameras/hall/control/release", headers={"X-CSRF-Token": csrf})


def test_login_from_another_origin_is_refused(app_client: TestClient) -> None:
    body = {"name": "vera", "password": PASSWORD}
    assert app_client.post("/api/login", json=body, headers={"Origin": "https://evil.example"}).status_code == 403


def test_camera_permissions_are_checked_when_serving(app_client: TestClient) -> None:
    login(app_client, "vera")
    names = {c["name"] for c in app_client.get("/api/cameras").json()}
    assert names == {"hall"}
    assert app_client.get("/api/cameras/vault/snapshot.jpg").status_code == 404
    assert app_client.get("/api/cameras/vault/stream.mjpg").status_code == 404
    login(app_client, "otto")
    assert {c["name"] for c in app_client.get("/api/cameras").json()} == {"hall", "vault"}
    assert wait_for_frame(app_client, "vault")[:2] == b"\xff\xd8"


def test_snapshots_show_the_demo_faces_veiled(app_client: TestClient, services: Room) -> None:
    login(app_client, "vera")
    jpeg = wait_for_frame(app_client, "hall")
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert shown is not None and shown.shape == (720, 1280)
    published = services.cameras["hall"].pipeline.latest()
    assert published is not None and not published.withheld


def test_turns_ptz_and_takeover(app_client: TestClient, services: Room) -> None:
    visitor = TestClient(app_client.app, base_url=LOOPBACK)
    vera = login(visitor, "vera")
    other = TestClient(app_client.app, base_url=LOOPBACK)
    vic = login(other, "vic")
    assert visitor.post("/api/cameras/hall/control/request", headers={"X-CSRF-Token": vera}).json()["holder"] == "vera"
    queued = other.post("/api/cameras/hall/control/request", headers={"X-CSRF-Token": vic}).json()
    assert queued["holder"] == "a visitor" and queued["queue"] == ["vic"]  # visitors see no other visitor by name
    assert other.post("/api/cameras/hall/ptz", json={"zoom": 1}, headers={"X-CSRF-Token": vic}).status_code == 409
    moved = visitor.post("/api/cameras/hall/ptz", json={"zoom": 1, "pan": 0.2}, headers={"X-CSRF-Token": vera})
    assert moved.status_code == 200 and moved.json()["zoom"] > 1
    assert services.cameras["hall"].pipeline.view.zoom > 1
    assert other.post("/api/cameras/hall/control/takeover", headers={"X-CSRF-Token": vic}).status_code == 403
    staff = TestClient(app_client.app, base_url=LOOPBACK)
    otto = login(staff, "otto")
    assert staff.post("/api/cameras/hall/control/takeover", headers={"X-CSRF-Token": otto}).json()["holder"] == "otto"
    staff.post("/api/cameras/hall/ptz", json={"reset": True}, headers={"X-CSRF-Token": otto})
    assert services.cameras["hall"].pipeline.view.zoom == 1
    assert visitor.post("/api/cameras/vault/control/request", headers={"X-CSRF-Token": vera}).status_code == 404
    kinds = {a.kind for a in services.records.actions.recent(50, camera="hall")}
    assert {"ptz.move"} <= kinds
    for client, csrf in ((staff, otto), (visitor, vera), (other, vic)):
        client.post("/api/cameras/hall/control/release", headers={"X-CSRF-Token": csrf})


def test_watchers_are_shown_by_name_for_staff_and_counted_for_visitors(app_client: TestClient, services: Room) -> None:
    first = services.cameras["hall"].presence.join("hall", "otto", "operator")
    second = services.cameras["hall"].presence.join("hall", "vera", "visitor")
    try:
        login(app_client, "vic")
        with app_client.websocket_connect(ROOM_SOCKET) as socket:
            state = socket.receive_json()
        watchers = state["cameras"]["hall"]["watchers"]
        assert watchers == {"staff": ["otto"], "visitors": 1}
        assert "vault" not in state["cameras"]
    finally:
        services.cameras["hall"].presence.leave(first)
        services.cameras["hall"].presence.leave(second)


def test_changing_a_role_ends_sessions_at_once(app_client: TestClient, services: Room) -> None:
    login(app_client, "vic")
    assert app_client.get("/api/me").status_code == 200
    services.records.users.set_role("vic", Role.VISITOR)
    assert app_client.get("/api/me").status_code == 401
    assert app_client.get("/api/cameras/hall/snapshot.jpg").status_code == 401


def test_metrics_for_staff_or_the_bearer_token(app_client: TestClient) -> None:
    assert app_client.get("/metrics").status_code == 401
    scraped = app_client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200 and 'veilwatch_camera_fps_in{camera="hall"}' in scraped.text
    assert app_client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    login(app_client, "vera")
    assert app_client.get("/metrics").status_code == 403


def test_health_is_public_and_says_little(app_client: TestClient) -> None:
    body = app_client.get("/health").json()
    assert body["status"] == "ok" and body["cameras"] == 2
    assert "demo" not in str(body)


def test_setup_is_closed_once_users_exist(app_client: TestClient) -> None:
    assert app_client.get("/setup").status_code == 404
    attempt = {"token": "anything", "name": "mallory", "password": "mallory's password"}
    assert app_client.post("/api/setup", json=attempt).status_code == 403


def test_recordings_are_staff_only_and_playable(app_client: TestClient, services: Room, tmp_path: Path) -> None:
    deadline = time.time() + 40
    segments: list[dict[str, float]] = []
    login(app_client, "otto")
    while time.time() < deadline and not segments:
        segments = app_client.get("/api/cameras/hall/recordings").json()
        time.sleep(1)
    assert segments, "no recording segment completed"
    video = app_client.get(f"/api/recordings/{int(segments[0]['id'])}.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    import av

    (tmp_path / "seg.mp4").write_bytes(video.content)
    with av.open(str(tmp_path / "seg.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0
    login(app_client, "vera")
    assert app_client.get("/api/cameras/hall/recordings").status_code == 403
    assert app_client.get(f"/api/recordings/{int(segments[0]['id'])}.mp4").status_code == 403
    assert "playback" in {a.kind for a in services.records.actions.recent(50)}


def test_the_log_holds_only_action_kinds(app_client: TestClient, services: Room) -> None:
    login(app_client, "otto")
    wait_for_frame(app_client, "hall")
    audit = services.records.audit
    kinds = {json.loads(entry)["kind"] for entry in audit.entries(0, audit.size())}
    assert {"config.load", "login", "view.snapshot"} <= kinds
    assert kinds <= set(ActionKind)
