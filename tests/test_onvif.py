"""Real PTZ over ONVIF: the real onvif-zeep-async client against a small ONVIF camera on loopback
(SOAP over HTTP, WS-Security checked), the real live pipeline, and the real server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import LOOPBACK
from tests.onvif_device import FOV_HALF_WIDTH, FOV_PT, GENERIC_PT, GENERIC_ZOOM, Features, OnvifDevice, Request
from tests.test_live import RecordingScanner
from veilwatch.config import CameraConfig, OnvifConfig, ServeConfig, ServerConfig
from veilwatch.detection.scanner import full_scan
from veilwatch.errors import PTZError
from veilwatch.live.onvif_ptz import MOVE_HOLD_S, SETTLE_MARGIN_S, HeadAbilities, HeadStep, OnvifPTZ, onvif_values
from veilwatch.live.pipeline import CameraPipeline, VeiledOutput
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.veiler import FrameVeiler
from veilwatch.redaction.veils import Veil
from veilwatch.room.room import Room, open_room
from veilwatch.server.app import create_app
from veilwatch.server.auth import LoginThrottle
from veilwatch.settings import AnonymizeSettings, DetectorSettings, LiveSettings
from veilwatch.sources.camera import DemoSource
from veilwatch.storage.users import Role
from veilwatch.tracking.tracker import FaceTracker

PASSWORD = "correct horse battery"
W, H = 320, 180


def head(
    device: OnvifDevice, password: str | None = None, on_motion: Callable[[float], None] | None = None
) -> OnvifPTZ:
    """The driver for the emulated camera (its own password unless told otherwise)."""
    config = OnvifConfig(host="127.0.0.1", port=device.port, user=device.user, password=password or device.password)
    return OnvifPTZ("dome", config, on_motion=on_motion)


def params(request: Request) -> dict[str, float | str]:
    """A request's numbers as floats, everything else as sent."""
    out: dict[str, float | str] = {}
    for key, value in request.params.items():
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


# --- the mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pan_tilt", "zoom", "step", "expected"),
    [
        ("fov", "relative", HeadStep(pan=0.15, tilt=0.1, zoom=0.5), (0.3, -0.2, 0.5 / 7)),  # (1, 1): view's corner
        ("generic", "relative", HeadStep(pan=0.15, tilt=-0.2, zoom=-0.5), (0.15, 0.2, -0.5 / 7)),
        ("generic", None, HeadStep(pan=-1, tilt=1, zoom=2), (-1.0, -1.0, 0.0)),  # no zoom on the head
        ("continuous", "continuous", HeadStep(pan=0.5, zoom=14), (0.5, 0.0, 1.0)),  # zoom clamped to the space
    ],
)
def test_room_steps_become_onvif_values(
    pan_tilt: str, zoom: str | None, step: HeadStep, expected: tuple[float, float, float]
) -> None:
    abilities = HeadAbilities("p", pan_tilt, zoom, home=True, absolute=True)  # type: ignore[arg-type]
    assert onvif_values(step, abilities) == pytest.approx(expected)


# --- the driver against the emulated camera ----------------------------------------------------


def test_a_step_moves_the_head_by_the_expected_amounts_in_the_fov_space() -> None:
    holds: list[tuple[float, float]] = []

    def on_motion(seconds: float) -> None:
        holds.append((time.monotonic(), seconds))

    with OnvifDevice(features=Features(fov=True)) as device, head(device, on_motion=on_motion) as dome:
        moved = dome.move(HeadStep(pan=0.15, tilt=0.1, zoom=0.5))
        abilities = dome.abilities()
        time.sleep(0.3)  # the status watch reports IDLE
    assert abilities == HeadAbilities("profile_1", "fov", "relative", home=True, absolute=True)
    assert device.operations()[:3] == ["GetServices", "GetProfiles", "GetNode"]
    (move,) = device.moves()
    sent = params(move)
    assert move.operation == "RelativeMove" and sent["ProfileToken"] == "profile_1"
    assert sent["PanTilt@space"] == FOV_PT and sent["Zoom@space"] == GENERIC_ZOOM
    assert (sent["PanTilt@x"], sent["PanTilt@y"], sent["Zoom@x"]) == pytest.approx((0.3, -0.2, 0.5 / 7))
    # The emulated head turned by that share of its view: right and up (the room's tilt + is down).
    assert device.head.pan == pytest.approx(0.3 * FOV_HALF_WIDTH)
    assert device.head.tilt == pytest.approx(-0.2 * FOV_HALF_WIDTH)
    assert device.head.zoom == pytest.approx(0.5 / 7)
    assert moved.operation == "RelativeMove" and moved.zoom_on_head
    # The live view was held before the camera got the move, then again once it reported IDLE.
    assert len(holds) >= 2 and holds[0][0] < move.at and holds[0][1] == MOVE_HOLD_S
    assert holds[-1][0] > move.at and holds[-1][1] == SETTLE_MARGIN_S
    assert "GetStatus" in device.operations()
    assert dome.stats().moves == 1 and dome.stats().errors == 0


def test_generic_space_home_and_a_second_move_on_one_connection() -> None:
    with OnvifDevice(features=Features(services=False)) as device, head(device) as dome:  # an older camera
        dome.move(HeadStep(pan=0.15, tilt=0.2))
        assert (device.head.pan, device.head.tilt) == pytest.approx((0.15, -0.2))
        sent = params(device.moves()[-1])
        assert sent["PanTilt@space"] == GENERIC_PT and "Zoom@x" not in sent  # no zoom asked, none sent
        dome.move(HeadStep(pan=0.15))
        assert device.head.pan == pytest.approx(0.3)
        home = dome.move(HeadStep(home=True))
        assert home.operation == "GotoHomePosition"
        assert (device.head.pan, device.head.tilt, device.head.zoom) == (0, 0, 0)
    assert device.operations().count("GetCapabilities") == 1  # connected once, without GetServices


def test_a_head_without_relative_moves_turns_continuously_then_stops() -> None:
    features = Features(relative=False, zoom=False, home=False)
    with OnvifDevice(features=features) as device, head(device) as dome:
        moved = dome.move(HeadStep(pan=0.2, tilt=-0.1, zoom=1.0))
        home = dome.move(HeadStep(home=True))
    continuous, stop, absolute = device.moves()
    sent = params(continuous)
    assert (continuous.operation, stop.operation) == ("ContinuousMove", "Stop")
    assert (sent["PanTilt@x"], sent["PanTilt@y"]) == pytest.approx((0.5, 0.25))  # half speed, the step's direction
    assert sent["Timeout"] == "PT0.2S"  # the camera stops by itself should our Stop be lost
    assert 0.18 <= stop.at - continuous.at < 1.0
    assert params(stop)["PanTilt"] == "true"
    assert moved.operation == "ContinuousMove" and not moved.zoom_on_head  # the room zooms digitally
    assert home.operation == "AbsoluteMove" and absolute.operation == "AbsoluteMove"
    assert (device.head.pan, device.head.tilt) == (0, 0)


def test_a_wrong_password_is_one_clear_line_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    wrong = "hunter2-not-it"
    caplog.set_level(logging.DEBUG)
    with OnvifDevice() as device, head(device, password=wrong) as dome:
        with pytest.raises(PTZError) as failure:
            dome.move(HeadStep(pan=0.1))
        with pytest.raises(PTZError):
            dome.move(HeadStep(pan=0.1))  # tries again (no stale half-connection), fails again
    message = failure.value.one_line()
    assert message == "camera dome: PTZ over ONVIF failed: the camera refused the ONVIF user name or password"
    assert failure.value.camera == "dome" and "\n" not in str(failure.value)
    assert device.auth_failures >= 2 and device.moves() == []
    assert dome.stats().errors == 2 and dome.stats().last_error == message
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert wrong not in logged and device.password not in logged
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [message, message]


def test_an_unreachable_camera_fails_within_the_timeout() -> None:
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    try:
        for sock, expected in ((silent, "no answer from the camera's ONVIF service within 0.5 s"),
                               (closed, "cannot reach the camera's ONVIF service")):  # fmt: skip
            config = OnvifConfig(host="127.0.0.1", port=sock.getsockname()[1], user="u", password="p4ssw0rd")
            with OnvifPTZ("gate", config, connect_timeout_s=0.5, call_timeout_s=0.5) as gate:
                start = time.monotonic()
                with pytest.raises(PTZError, match=expected) as failure:
                    gate.move(HeadStep(pan=0.1))
                assert time.monotonic() - start < 2.0
                assert "p4ssw0rd" not in str(failure.value)
    finally:
        silent.close()
        closed.close()


def test_a_closed_head_refuses_moves() -> None:
    with OnvifDevice() as device:
        dome = head(device)
        dome.move(HeadStep(tilt=0.1))
        threads = {t.name for t in threading.enumerate()}
        assert "onvif-dome" in threads
        dome.close()
        dome.close()
        assert "onvif-dome" not in {t.name for t in threading.enumerate()}
        with pytest.raises(PTZError, match="closed"):
            dome.move(HeadStep(tilt=0.1))


# --- the live pipeline: a moving head forces a fresh full search -----------------------------------


def test_a_real_move_withholds_the_moving_picture_then_searches_it_in_full() -> None:
    engine = Engine(AnonymizeSettings(detector=DetectorSettings(min_face=12, threads=1)))
    scanners: list[RecordingScanner] = []

    def veilers(width: int, height: int, fps: float) -> FrameVeiler:
        period = max(1, round(engine.settings.detector.full_scan_seconds * fps))
        scanners.append(RecordingScanner(engine.scanner, width, height, period))
        return FrameVeiler(
            scanners[-1], Veil(engine.settings.veil), FaceTracker(engine.tracker_config(fps, period, live=True))
        )

    outputs: list[VeiledOutput] = []
    holds: list[float] = []
    demo = DemoSource(seed=3, people=2, width=W, height=H, fps=10)
    pipeline = CameraPipeline("dome", demo, veilers, LiveSettings(width=W, height=H, fps=10), [outputs.append])

    def on_motion(seconds: float) -> None:
        holds.append(time.monotonic())
        pipeline.hold_for_motion(seconds)

    with OnvifDevice(features=Features(move_s=0.6)) as device, pipeline, head(device, on_motion=on_motion) as dome:
        dome.abilities()  # connected: the move below goes out at once
        deadline = time.monotonic() + 15
        while len(outputs) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        withheld_before = pipeline.stats().withheld
        dome.move(HeadStep(pan=0.3))
        while not [o for o in outputs if o.captured_at > holds[0]] and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = pipeline.stats()
    idle_at = max(r.at for r in device.requests if r.operation == "GetStatus")
    shown = [o.captured_at for o in outputs if o.captured_at >= holds[0]]
    assert len(device.moves()) == 1 and shown, f"no veiled frame after the move: {stats}"
    # Nothing captured while the head moved (0.6 s, reported MOVING) or just after was shown or recorded …
    assert min(shown) >= idle_at + SETTLE_MARGIN_S
    assert stats.withheld >= withheld_before + 10  # 10 fps, withheld for at least 1.6 s
    # … and the first frame after it was searched by a new veiler, at every level (as for a new view).
    tiles = len(full_scan(W, H, engine.settings.detector))
    assert len(scanners) == 2
    assert scanners[1].history[0].tiles_scanned == tiles


# --- the server: log, then move -------------------------------------------------------------------


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Room, OnvifDevice, list[str]]]:
    seen: list[str] = []  # what the action log held when each move reached the camera
    device = OnvifDevice(features=Features(fov=True)).start()
    data: Path = tmp_path_factory.mktemp("onvif-room")
    good = OnvifConfig(host="127.0.0.1", port=device.port, user=device.user, password=device.password)
    bad = good.model_copy(update={"password": "wrong-pass-123"})
    cameras = [
        CameraConfig(name="dome", source="demo:walkers?seed=1&people=2&width=320&height=180", onvif=good),
        CameraConfig(name="broken", source="demo:walkers?seed=2&people=1&width=320&height=180", onvif=bad),
        CameraConfig(name="hall", source="demo:walkers?seed=3&people=1&width=320&height=180"),
    ]
    server = ServerConfig(data_dir=data, metrics_token="scrape-me")
    services = open_room(ServeConfig(server=server, cameras=cameras))

    def before_move(request: Request) -> None:
        if request.operation == "RelativeMove":
            latest = services.records.actions.latest("ptz.move")
            seen.append(latest.details.get("pan", "") if latest is not None else "nothing logged")

    device.on_request = before_move
    services.records.users.add("vera", PASSWORD, Role.VISITOR)
    yield services, device, seen
    services.close()
    device.stop()


def test_steering_an_onvif_camera_logs_then_moves_the_real_head(room: tuple[Room, OnvifDevice, list[str]]) -> None:
    services, device, seen = room
    client = TestClient(create_app(services, throttle=LoginThrottle(free=3, base_delay_s=60)), base_url=LOOPBACK)
    answer = client.post("/api/login", json={"name": "vera", "password": PASSWORD})
    csrf = {"X-CSRF-Token": answer.json()["csrf"]}
    listed = {c["name"]: c["ptz"] for c in client.get("/api/cameras").json()}
    assert listed == {"dome": "onvif", "broken": "onvif", "hall": "digital"}
    assert client.post("/api/cameras/dome/ptz", json={"pan": 0.1}, headers=csrf).status_code == 409  # no turn yet
    assert client.post("/api/cameras/dome/control/request", headers=csrf).json()["holder"] == "vera"
    moved = client.post("/api/cameras/dome/ptz", json={"pan": 0.25, "zoom": 0.5}, headers=csrf)
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["ptz"] == "onvif" and body["sent"]["operation"] == "RelativeMove"
    assert body["view"] == {"pan": 0.0, "tilt": 0.0, "zoom": 1.0}  # the real head moved, not the crop
    assert device.head.pan == pytest.approx(0.5 * FOV_HALF_WIDTH) and device.head.zoom == pytest.approx(0.5 / 7)
    assert seen == ["0.250"]  # the move reached the camera only after its record was in the log
    record = services.records.actions.latest("ptz.move")
    assert services.records.recorder.names is not None  # visitors are logged by pseudonym
    assert record is not None and record.actor == services.records.recorder.names.actor("vera", "visitor")
    assert record.details["head"] == "onvif"
    reset = client.post("/api/cameras/dome/ptz", json={"reset": True}, headers=csrf)
    assert reset.json()["sent"]["operation"] == "GotoHomePosition" and device.head.pan == 0
    client.post("/api/cameras/dome/control/release", headers=csrf)


def test_a_camera_refusing_the_credentials_answers_502_in_one_line(
    room: tuple[Room, OnvifDevice, list[str]],
) -> None:
    services, _, _ = room
    client = TestClient(create_app(services, throttle=LoginThrottle(free=3, base_delay_s=60)), base_url=LOOPBACK)
    csrf = {"X-CSRF-Token": client.post("/api/login", json={"name": "vera", "password": PASSWORD}).json()["csrf"]}
    client.post("/api/cameras/broken/control/request", headers=csrf)
    failed = client.post("/api/cameras/broken/ptz", json={"tilt": 0.1}, headers=csrf)
    assert failed.status_code == 502
    assert failed.json()["detail"] == (
        "camera broken: PTZ over ONVIF failed: the camera refused the ONVIF user name or password"
    )
    assert "wrong-pass-123" not in failed.text
    assert "wrong-pass-123" not in client.get("/api/cameras").text
    record = services.records.actions.latest("ptz.move")
    assert record is not None and record.camera == "broken"  # the attempt is on the record all the same
    scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
    assert 'veilwatch_camera_ptz_errors_total{camera="broken"} 1.0' in scraped
    assert 'veilwatch_camera_ptz_errors_total{camera="hall"} 0.0' in scraped
    client.post("/api/cameras/broken/control/release", headers=csrf)
