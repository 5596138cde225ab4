"""The server against a hostile client: each test reproduces a hole a hostile test found, now closed.

Real services (a small demo camera, the real model, real SQLite and Merkle log, a real 2-of-3 vault)
behind the real app, through Starlette's TestClient or a real uvicorn server on loopback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import httpx2
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.helpers import LOOPBACK, ROOM_SOCKET, cli_env, error_lines, free_port, login_as, run_cli, serving
from veilwatch.config import CameraConfig, OnvifConfig, ServeConfig, ServerConfig, VaultConfig
from veilwatch.pipeline.engine import Engine
from veilwatch.room.room import Room, config_digest, open_room
from veilwatch.server.app import create_app
from veilwatch.server.auth import LoginThrottle
from veilwatch.settings import LiveSettings
from veilwatch.storage.users import Role, UserStore
from veilwatch.vault.bundle import HolderSpec, KdfParams, create_vault

PASSWORD = "correct horse battery"
LIGHT_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
TOKEN = "scrape-me"
Answer = httpx2.Response  # what Starlette's TestClient returns


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Room]:
    root = tmp_path_factory.mktemp("hostile")
    vault, _ = create_vault([HolderSpec(n, f"pass of {n}!") for n in ("ana", "ben", "chi")], 2,
                            datetime.now(UTC).date(), days=2, kdf=LIGHT_KDF)  # fmt: skip
    (root / "vault.json").write_bytes(vault.to_json())
    view = LiveSettings(width=160, height=120, fps=2)
    camera = CameraConfig(name="hall", source="demo:walkers?seed=1&people=2", live=view, record=False)
    server = ServerConfig(data_dir=root / "data", metrics_token=TOKEN)  # made by the server: its mode is ours
    config = ServeConfig(server=server, vault=VaultConfig(public_file=root / "vault.json"), cameras=[camera])
    running = open_room(config, engine_factory=lambda _: engine)
    for name, role in (("ada", Role.ADMIN), ("otto", Role.OPERATOR), ("vera", Role.VISITOR), ("vic", Role.VISITOR)):
        running.records.users.add(name, PASSWORD, role)
    yield running
    running.close()


def with_server(services: Room, **changes: Any) -> Room:
    """The same running services under a changed [server] config (e.g. a smaller body limit)."""
    server = services.config.server.model_copy(update=changes)
    return dataclasses.replace(services, config=services.config.model_copy(update={"server": server}))


def room(services: Room, *, free: int = 50, client: str = "testclient", **kwargs: Any) -> TestClient:
    app = create_app(services, throttle=LoginThrottle(free=free, base_delay_s=60))
    return TestClient(app, base_url=kwargs.pop("base_url", LOOPBACK), client=(client, 50000), **kwargs)


def login(client: TestClient, name: str) -> str:
    return login_as(client, name, PASSWORD)


def new_entries(services: Room, before: int) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in services.records.audit.entries(before, services.records.audit.size())]


# 1, 10: failed logins -------------------------------------------------------------------------------


def test_a_guessed_visitor_name_in_a_failed_login_shares_nothing_with_the_visitors_entries(services: Room) -> None:
    client = room(services)
    before = services.records.audit.size()
    login(client, "vera")
    own = new_entries(services, before)[-1]
    assert own["kind"] == "login" and own["actor"].startswith("visitor-")
    before = services.records.audit.size()
    guess = room(services).post("/api/login", json={"name": "Vera", "password": "a guess at it"})
    assert guess.status_code == 401
    failed = new_entries(services, before)
    assert "login.failed" in [e["kind"] for e in failed]
    assert own["actor"] not in json.dumps(failed) and own["actor"][len("visitor-") :] not in json.dumps(failed)


def test_failed_logins_look_the_same_whichever_name_was_typed(services: Room) -> None:
    answers, shapes = set(), set()
    for name in ("ada", "vera", "nobody-at-all"):
        before = services.records.audit.size()
        response = room(services).post("/api/login", json={"name": name, "password": "not the password"})
        answers.add((response.status_code, response.text))
        (entry,) = [e for e in new_entries(services, before) if e["kind"] == "login.failed"]
        shapes.add((entry["actor"], entry["role"], tuple(sorted(entry["details"])), entry["details"]["attempt"][:8]))
        assert name not in {entry["actor"], *map(str, entry["details"].values())}
    assert answers == {(401, '{"detail":"wrong name or password"}')} and len(shapes) == 1


class CountingHasher(PasswordHasher):
    """argon2id that counts its verifications (the work done per login)."""

    verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        CountingHasher.verified += 1
        return super().verify(hash, password)


def test_an_unknown_name_costs_the_same_hash_as_a_known_one(services: Room) -> None:
    users = UserStore(services.records.db, hasher=CountingHasher(time_cost=1, memory_cost=8 * 1024))
    for name in ("ada", "nobody-at-all", "not a valid name!"):
        CountingHasher.verified = 0
        assert users.verify(name, "not the password") is None
        assert CountingHasher.verified == 1, name


# 2, 8: the login throttle -----------------------------------------------------------------------------


def test_a_strangers_wrong_passwords_do_not_lock_the_owner_out(services: Room) -> None:
    app = create_app(services, throttle=LoginThrottle(free=3, base_delay_s=60))
    stranger = TestClient(app, base_url=LOOPBACK, client=("203.0.113.9", 40000))
    owner = TestClient(app, base_url=LOOPBACK, client=("198.51.100.7", 40000))
    answers = [stranger.post("/api/login", json={"name": "vic", "password": "guess!"}).status_code for _ in range(5)]
    assert answers[:3] == [401] * 3 and answers[3:] == [429] * 2
    assert owner.post("/api/login", json={"name": "vic", "password": PASSWORD}).status_code == 200
    # The stranger is slowed on every account, not only on the one guessed at.
    assert stranger.post("/api/login", json={"name": "vera", "password": "guess!"}).status_code == 429


def test_logins_arriving_together_cannot_race_past_the_throttle(services: Room) -> None:
    client = room(services, free=3, client="192.0.2.44")
    start = threading.Barrier(12)
    answers: list[int] = []

    def guess() -> None:
        start.wait()
        answers.append(client.post("/api/login", json={"name": "vic", "password": "guess!"}).status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers) == [401] * 3 + [429] * 9


# 3, 6, 12: bodies, validation errors, and no 500s ------------------------------------------------------


def test_a_body_over_the_limit_is_refused_by_its_length(services: Room) -> None:
    client = room(with_server(services, max_body_bytes=4096))
    big = json.dumps({"name": "x" * 10_000, "password": "SECRET-MARKER"})
    response = client.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "SECRET-MARKER" not in response.text and "xxxx" not in response.text


def test_a_chunked_body_is_refused_once_past_the_limit(services: Room) -> None:
    client = room(with_server(services, max_body_bytes=4096))
    response = client.post("/api/login", content=_chunks(10_000), headers={"Content-Type": "application/json"})
    assert response.status_code == 413  # no Content-Length (chunked): counted as it arrives


def test_a_refused_body_is_not_echoed_back(services: Room) -> None:
    response = room(services).post("/api/login", json={"name": "SECRET-MARKER" * 20, "password": "SECRET-MARKER"})
    assert response.status_code == 422 and "SECRET-MARKER" not in response.text
    body = response.json()
    assert body["detail"] == "body.name: String should have at most 64 characters"
    assert all(set(error) == {"loc", "msg"} for error in body["errors"])


def test_the_default_limit_takes_a_share_file(services: Room) -> None:
    client = room(services)
    login(client, "otto")
    share = {"share": "A" * 1_999_000, "passphrase": "pass of ana!"}  # a share file as big as the route takes
    answer = client.post("/api/unmask/0123456789abcdef0123456789abcdef/approve-with-share", json=share)
    assert answer.status_code not in (413, 422), answer.text


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'", "password": "p"}'


@pytest.fixture(scope="module")
def live(services: Room) -> Iterator[str]:
    """The app behind a real uvicorn server on loopback, with a small body limit (64 KiB)."""
    app = create_app(with_server(services, max_body_bytes=65536), throttle=LoginThrottle(free=1000))
    with serving(app) as base:
        yield base


def test_a_chunked_body_is_cut_off_at_the_limit(live: str) -> None:
    headers = {"Content-Type": "application/json"}
    response = httpx.post(f"{live}/api/login", content=_chunks(200_000), headers=headers, timeout=30)
    assert response.status_code == 413
    small = httpx.post(f"{live}/api/login", content=_chunks(16_384), headers=headers, timeout=30)
    assert small.status_code == 422  # under the limit: read, and refused for what it says


def _logged_in(services: Room, name: str | None) -> TestClient:
    client = room(services)
    if name is not None:
        login(client, name)
    return client


def _ptz_nan(client: TestClient) -> Answer:
    assert client.post("/api/cameras/hall/control/request").json()["holder"] == "vera"
    try:
        return client.post("/api/cameras/hall/ptz", content=b'{"pan": NaN}', headers=JSON)
    finally:
        client.post("/api/cameras/hall/control/release")


JSON = {"Content-Type": "application/json"}
NOT_ASCII = "Bearer é".encode()
# (who is logged in, the request): each was a 500 with a traceback.
HOSTILE: dict[str, tuple[str | None, Callable[[TestClient], Answer]]] = {
    "login NaN": (None, lambda c: c.post("/api/login", content=b'{"name": NaN, "password": "p"}', headers=JSON)),
    "login Infinity": (
        None,
        lambda c: c.post("/api/login", content=b'{"name": "a", "password": Infinity}', headers=JSON),
    ),
    "setup -Infinity": (
        None,
        lambda c: c.post("/api/setup", content=b'{"token": -Infinity, "name": "a", "password": "p"}', headers=JSON),
    ),
    "login lone surrogate": (
        None,
        lambda c: c.post("/api/login", content=b'{"name": "\\ud800", "password": "pw"}', headers=JSON),
    ),
    "metrics non-ASCII bearer": (None, lambda c: c.get("/metrics", headers={b"Authorization": NOT_ASCII})),
    "recording id 2**63": ("otto", lambda c: c.get(f"/api/recordings/{2**63}.mp4")),
    "non-ASCII CSRF header": (
        "vera",
        lambda c: c.post("/api/cameras/hall/control/request", headers={b"X-CSRF-Token": "é".encode()}),
    ),
    "PTZ NaN": ("vera", _ptz_nan),
    "deeply nested approval": (
        "otto",
        lambda c: c.post(
            "/api/unmask/0123456789abcdef0123456789abcdef/approvals", content=b"[" * 100_000, headers=JSON
        ),
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_is_a_4xx_with_one_clear_line(services: Room, case: str) -> None:
    who, call = HOSTILE[case]
    response = call(_logged_in(services, who))
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail


def test_rejected_input_leaves_no_traceback(live: str, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    with httpx.Client(base_url=live, timeout=30) as client:
        for body in (b'{"name": NaN, "password": "p"}', b'{"name": "\\ud800", "password": "pw"}', b"[" * 60_000):
            assert client.post("/api/login", content=body, headers=JSON).status_code in (400, 422)
        assert client.get("/metrics", headers={b"Authorization": NOT_ASCII}).status_code == 401
        assert client.post("/api/login", content=_chunks(200_000), headers=JSON).status_code == 413
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err[-2000:]


# 4, 14: websocket Origin and the Host allow-list --------------------------------------------------------


def test_the_room_websocket_refuses_a_foreign_origin(services: Room) -> None:
    client = room(services)
    login(client, "vera")
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(ROOM_SOCKET, headers={"Origin": "https://evil.example"}) as socket,
    ):
        socket.receive_json()
    with client.websocket_connect(ROOM_SOCKET, headers={"Origin": "http://127.0.0.1"}) as socket:
        assert "hall" in socket.receive_json()["cameras"]


def test_only_allowed_host_names_are_served(services: Room) -> None:
    assert room(services, base_url="http://evil.example").get("/health").status_code == 400
    assert room(services, base_url="http://localhost:8470").get("/health").status_code == 200
    named = with_server(services, allowed_hosts=["cameras.example.org"])
    assert room(named, base_url="https://cameras.example.org").get("/health").status_code == 200
    assert room(named, base_url="https://other.example.org").get("/health").status_code == 400


# 5: anonymous refusals ------------------------------------------------------------------------------------


def test_anonymous_refusals_leave_few_leaves_and_are_counted(services: Room) -> None:
    client = room(services, client="192.0.2.99")
    before = services.records.audit.size()
    for _ in range(200):
        assert client.get("/api/cameras").status_code == 401
    assert services.records.audit.size() - before <= 2
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    unlogged = re.search(r"^veilwatch_refusals_unlogged_total (\S+)$", metrics, re.MULTILINE)
    assert unlogged is not None and float(unlogged.group(1)) >= 199
    before = services.records.audit.size()  # someone known is logged every time, first
    login(client, "vera")
    for _ in range(3):
        assert client.get("/api/unmask").status_code == 403
    assert [e["kind"] for e in new_entries(services, before)] == ["login"] + ["auth.denied"] * 3


# 7: names in the control desk -----------------------------------------------------------------------------


def test_visitors_see_other_visitors_only_as_a_visitor(services: Room) -> None:
    vera, vic, otto = room(services), room(services), room(services)
    for client, name in ((vera, "vera"), (vic, "vic"), (otto, "otto")):
        login(client, name)
    try:
        assert vera.post("/api/cameras/hall/control/request").json()["holder"] == "vera"
        seen_by_vic = vic.post("/api/cameras/hall/control/request").json()
        assert seen_by_vic["holder"] == "a visitor" and seen_by_vic["queue"] == ["vic"]
        assert vera.get("/api/cameras").json()[0]["control"]["queue"] == ["a visitor"]
        with vic.websocket_connect(ROOM_SOCKET) as socket:
            assert socket.receive_json()["cameras"]["hall"]["control"]["holder"] == "a visitor"
        assert otto.get("/api/cameras").json()[0]["control"] | {"remaining_s": 0} == {
            "holder": "vera", "queue": ["vic"], "remaining_s": 0}  # fmt: skip
    finally:
        for client in (vic, vera):
            client.post("/api/cameras/hall/control/release")


# 15: the API docs, offline ----------------------------------------------------------------------------------


def test_the_api_docs_come_from_this_server_under_a_csp(services: Room) -> None:
    client = room(services)
    assert client.get("/docs", headers={"Accept": "application/json"}).status_code == 401  # as before: signed in
    login(client, "vera")
    page = client.get("/docs")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(https?:)?//", page.text), "the page loads something from elsewhere"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "veilwatch monitoring room"


# 9, 11, 13: cookie, config digest, file modes ----------------------------------------------------------------


def test_the_cookie_is_secure_behind_a_tls_proxy(services: Room) -> None:
    response = room(with_server(services, behind_tls_proxy=True)).post(
        "/api/login", json={"name": "vera", "password": PASSWORD}
    )
    assert response.status_code == 200 and "; secure" in response.headers["set-cookie"].lower()


def test_the_logged_config_digest_hides_secrets(services: Room) -> None:
    def config(password: str) -> ServeConfig:
        camera = CameraConfig(
            name="gate", source=f"rtsp://cam:{password}@10.0.0.5/s?token={password}",
            onvif=OnvifConfig(host="10.0.0.5", user="cam", password=password),
        )  # fmt: skip
        return ServeConfig(server=ServerConfig(metrics_token=password), cameras=[camera])

    first, second = config("hunter2"), config("letmein")
    assert config_digest(first) == config_digest(second)
    assert config_digest(first) != hashlib.sha256(first.model_dump_json().encode()).hexdigest()
    logged = services.records.actions.latest("config.load")
    assert logged is not None and logged.details["sha256"] == config_digest(services.config)


def test_the_data_folder_is_private(services: Room) -> None:
    data = services.config.server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "veilwatch.sqlite3").stat().st_mode) == 0o600
    assert all(stat.S_IMODE(path.stat().st_mode) & 0o077 == 0 for path in data.glob("veilwatch.sqlite3*"))


def test_served_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "room.toml"
    config.write_text(
        f'[server]\nport = {port}\ndata_dir = "{tmp_path / "data"}"\nsegment_seconds = 1\n\n'
        '[[cameras]]\nname = "hall"\nsource = "demo:walkers?seed=1&people=1"\nwidth = 64\nheight = 64\nfps = 2\n'
    )
    command = [sys.executable, "-m", "veilwatch.cli.app", "serve", "--config", str(config)]
    server = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # generous: the model loads first, on a loaded machine
        while not list((tmp_path / "data").rglob("*.mp4")) and time.monotonic() < deadline:
            assert server.poll() is None, "the server stopped"
            time.sleep(0.5)
        made = [tmp_path / "data", *(tmp_path / "data").rglob("*")]
        assert any(path.suffix == ".mp4" for path in made), "no recording was made"
        open_to_others = [path for path in made if stat.S_IMODE(path.stat().st_mode) & 0o077]
        assert open_to_others == []
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)


# 16: TLS files ---------------------------------------------------------------------------------------------


def test_missing_tls_files_are_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\ntls_cert = "{tmp_path / "no-cert.pem"}"\n'
        f'tls_key = "{tmp_path / "no-key.pem"}"\n'
    )
    result = run_cli("serve", "--config", config)
    err = result.stderr.decode()
    assert result.returncode != 0 and "Traceback" not in err
    assert error_lines(result.stderr) == [line for line in err.splitlines() if line.strip()]
    assert len(error_lines(result.stderr)) == 1 and "no-cert.pem" in err
