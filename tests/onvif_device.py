"""A small ONVIF PTZ camera on loopback: real SOAP 1.2 over HTTP, WS-Security checked, a head that moves.

It answers what a PTZ client asks — device GetServices/GetCapabilities, media GetProfiles, PTZ GetNode,
RelativeMove, ContinuousMove, Stop, AbsoluteMove, GotoHomePosition, GetStatus — for one profile and
one node, and refuses anything else with an ActionNotSupported fault. Every request must carry a
WS-Security UsernameToken whose password digest matches (else a ter:NotAuthorized fault, HTTP 400,
as the ONVIF core specification has it). The head keeps its position in the generic spaces (pan
and tilt -1..1, zoom 0..1) and reports MOVING for `move_s` after each move.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
TT = "http://www.onvif.org/ver10/schema"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
GENERIC_PT = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
FOV_PT = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationSpaceFov"
GENERIC_ZOOM = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"
FOV_HALF_WIDTH = 0.1  # generic pan units from the centre of the view to its edge (a wide lens at zoom 0)


@dataclass(frozen=True)
class Request:
    """One authenticated call the device received: operation name and its parameters (flattened)."""

    operation: str
    params: dict[str, str]
    at: float


@dataclass
class Head:
    """Where the emulated head points (generic spaces) and until when it moves."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    moving_until: float = 0.0


@dataclass
class Features:
    """What the emulated node supports."""

    relative: bool = True  # RelativeMove (else only ContinuousMove + Stop)
    fov: bool = False  # the TranslationSpaceFov relative pan/tilt space
    zoom: bool = True
    home: bool = True
    move_s: float = 0.0  # MOVING this long after each move
    services: bool = True  # GetServices (else the client must fall back to GetCapabilities)


@dataclass
class OnvifDevice:
    """An ONVIF PTZ camera on 127.0.0.1; `start()`, steer it, read `requests` and `head`, `stop()`."""

    user: str = "admin"
    password: str = "s3cret-pw"
    features: Features = field(default_factory=Features)
    on_request: Callable[[Request], None] | None = None  # called before a move takes effect
    head: Head = field(default_factory=Head)
    requests: list[Request] = field(default_factory=list)
    auth_failures: int = 0
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OnvifDevice:
        """Listen on a free loopback port."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OnvifDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def operations(self) -> list[str]:
        """The operations received so far, in order."""
        with self._lock:
            return [r.operation for r in self.requests]

    def moves(self) -> list[Request]:
        """The steering calls received so far."""
        kinds = {"RelativeMove", "ContinuousMove", "Stop", "AbsoluteMove", "GotoHomePosition"}
        with self._lock:
            return [r for r in self.requests if r.operation in kinds]

    # --- SOAP -------------------------------------------------------------------------------------

    def answer(self, body: bytes) -> tuple[int, str]:
        """The HTTP status and SOAP envelope answering one request."""
        envelope = ET.fromstring(body)
        call = envelope.find(f"{{{SOAP}}}Body/*")
        if call is None:
            return 400, _fault("env:Sender", "ter:InvalidArgVal", "no operation")
        operation = call.tag.split("}")[-1]
        if not self._authentic(envelope):
            with self._lock:
                self.auth_failures += 1
            return 400, _fault("env:Sender", "ter:NotAuthorized", "Sender not Authorized")
        request = Request(operation, _flatten(call), time.monotonic())
        handler = self._operations().get(operation)
        if handler is None or not self._supported(operation):
            return 400, _fault("env:Receiver", "ter:ActionNotSupported", f"{operation} is not supported")
        if self.on_request is not None:
            self.on_request(request)
        with self._lock:
            self.requests.append(request)
            return 200, _envelope(handler(request.params))

    def _operations(self) -> dict[str, Callable[[dict[str, str]], str]]:
        return {
            "GetServices": self._get_services,
            "GetCapabilities": self._get_capabilities,
            "GetProfiles": self._get_profiles,
            "GetNode": self._get_node,
            "RelativeMove": self._relative_move,
            "ContinuousMove": self._continuous_move,
            "Stop": self._stop,
            "AbsoluteMove": self._absolute_move,
            "GotoHomePosition": self._goto_home_position,
            "GetStatus": self._get_status,
        }

    def _supported(self, operation: str) -> bool:
        f = self.features
        return not (
            (operation == "RelativeMove" and not f.relative)
            or (operation == "GotoHomePosition" and not f.home)
            or (operation == "GetServices" and not f.services)
        )

    def _authentic(self, envelope: ET.Element) -> bool:
        token = envelope.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username")
        digest = token.findtext(f"{{{WSSE}}}Password")
        nonce = token.findtext(f"{{{WSSE}}}Nonce")
        created = token.findtext(f"{{{WSU}}}Created")
        if user != self.user or digest is None or nonce is None or created is None:
            return False
        expected = hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
        return base64.b64encode(expected).decode() == digest

    def _xaddr(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/onvif/{path}"

    def _get_services(self, params: dict[str, str]) -> str:
        services = ((TDS, "device_service"), (TRT, "media_service"), (TPTZ, "ptz_service"))
        entries = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{self._xaddr(path)}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
            for ns, path in services
        )
        return f"<tds:GetServicesResponse>{entries}</tds:GetServicesResponse>"

    def _get_capabilities(self, params: dict[str, str]) -> str:
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self._xaddr('device_service')}</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self._xaddr('media_service')}</tt:XAddr></tt:Media>"
            f"<tt:PTZ><tt:XAddr>{self._xaddr('ptz_service')}</tt:XAddr></tt:PTZ>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _get_profiles(self, params: dict[str, str]) -> str:
        tag = "tt:DefaultRelativePanTiltTranslationSpace"
        relative = f"<{tag}>{GENERIC_PT}</{tag}>"
        return (
            '<trt:GetProfilesResponse><trt:Profiles token="profile_1" fixed="true"><tt:Name>main</tt:Name>'
            '<tt:PTZConfiguration token="ptz_config_1"><tt:Name>ptz</tt:Name><tt:UseCount>1</tt:UseCount>'
            f"<tt:NodeToken>node_1</tt:NodeToken>{relative if self.features.relative else ''}"
            "</tt:PTZConfiguration></trt:Profiles></trt:GetProfilesResponse>"
        )

    def _get_node(self, params: dict[str, str]) -> str:
        f = self.features
        spaces = [_space("AbsolutePanTiltPositionSpace", "PanTiltSpaces/PositionGenericSpace", -1, 1, 2)]
        if f.zoom:
            spaces.append(_space("AbsoluteZoomPositionSpace", "ZoomSpaces/PositionGenericSpace", 0, 1, 1))
        if f.relative:
            spaces.append(_space("RelativePanTiltTranslationSpace", "PanTiltSpaces/TranslationGenericSpace", -1, 1, 2))
            if f.fov:
                spaces.append(_space("RelativePanTiltTranslationSpace", "PanTiltSpaces/TranslationSpaceFov", -1, 1, 2))
            if f.zoom:
                spaces.append(_space("RelativeZoomTranslationSpace", "ZoomSpaces/TranslationGenericSpace", -1, 1, 1))
        spaces.append(_space("ContinuousPanTiltVelocitySpace", "PanTiltSpaces/VelocityGenericSpace", -1, 1, 2))
        if f.zoom:
            spaces.append(_space("ContinuousZoomVelocitySpace", "ZoomSpaces/VelocityGenericSpace", -1, 1, 1))
        return (
            '<tptz:GetNodeResponse><tptz:PTZNode token="node_1" FixedHomePosition="false">'
            f"<tt:Name>head</tt:Name><tt:SupportedPTZSpaces>{''.join(spaces)}</tt:SupportedPTZSpaces>"
            f"<tt:MaximumNumberOfPresets>0</tt:MaximumNumberOfPresets><tt:HomeSupported>{str(f.home).lower()}"
            "</tt:HomeSupported></tptz:PTZNode></tptz:GetNodeResponse>"
        )

    def _moved(self, pan: float, tilt: float, zoom: float) -> None:
        head = self.head
        head.pan, head.tilt = _clamp(pan, -1, 1), _clamp(tilt, -1, 1)
        head.zoom = _clamp(zoom, 0, 1)
        head.moving_until = time.monotonic() + self.features.move_s

    def _relative_move(self, params: dict[str, str]) -> str:
        head = self.head
        scale = FOV_HALF_WIDTH if params.get("PanTilt@space") == FOV_PT else 1.0
        pan = head.pan + float(params.get("PanTilt@x", 0)) * scale
        tilt = head.tilt + float(params.get("PanTilt@y", 0)) * scale
        self._moved(pan, tilt, head.zoom + float(params.get("Zoom@x", 0)))
        return "<tptz:RelativeMoveResponse/>"

    def _continuous_move(self, params: dict[str, str]) -> str:
        self.head.moving_until = float("inf")
        return "<tptz:ContinuousMoveResponse/>"

    def _stop(self, params: dict[str, str]) -> str:
        # The head moved at full speed (1 generic unit per second) since the ContinuousMove.
        since = next(r for r in reversed(self.requests[:-1]) if r.operation == "ContinuousMove")
        seconds = self.requests[-1].at - since.at if self.requests else 0.0
        head, velocity = self.head, since.params
        self._moved(
            head.pan + float(velocity.get("PanTilt@x", 0)) * seconds,
            head.tilt + float(velocity.get("PanTilt@y", 0)) * seconds,
            head.zoom + float(velocity.get("Zoom@x", 0)) * seconds,
        )
        return "<tptz:StopResponse/>"

    def _absolute_move(self, params: dict[str, str]) -> str:
        position = (float(params.get(key, 0)) for key in ("PanTilt@x", "PanTilt@y", "Zoom@x"))
        self._moved(*position)
        return "<tptz:AbsoluteMoveResponse/>"

    def _goto_home_position(self, params: dict[str, str]) -> str:
        self._moved(0.0, 0.0, 0.0)
        return "<tptz:GotoHomePositionResponse/>"

    def _get_status(self, params: dict[str, str]) -> str:
        head = self.head
        state = "MOVING" if time.monotonic() < head.moving_until else "IDLE"
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            f'<tt:PanTilt x="{head.pan}" y="{head.tilt}"/><tt:Zoom x="{head.zoom}"/></tt:Position>'
            f"<tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt><tt:Zoom>{state}</tt:Zoom></tt:MoveStatus>"
            "<tt:UtcTime>2026-01-01T00:00:00Z</tt:UtcTime></tptz:PTZStatus></tptz:GetStatusResponse>"
        )


def _space(kind: str, uri: str, low: float, high: float, dims: int) -> str:
    ranges = "".join(
        f"<tt:{axis}Range><tt:Min>{low}</tt:Min><tt:Max>{high}</tt:Max></tt:{axis}Range>" for axis in "XY"[:dims]
    )
    return f"<tt:{kind}><tt:URI>http://www.onvif.org/ver10/tptz/{uri}</tt:URI>{ranges}</tt:{kind}>"


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _flatten(call: ET.Element) -> dict[str, str]:
    """Leaf texts and attributes by local name: {"ProfileToken": "p", "PanTilt@x": "0.1", ...}."""
    flat: dict[str, str] = {}
    for element in call.iter():
        name = element.tag.split("}")[-1]
        if element is not call and element.text and element.text.strip():
            flat[name] = element.text.strip()
        for key, value in element.attrib.items():
            flat[f"{name}@{key.split('}')[-1]}"] = value
    return flat


def _envelope(body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP}" xmlns:tt="{TT}" '
        f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tptz="{TPTZ}" xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    )


def _fault(code: str, subcode: str, reason: str) -> str:
    return _envelope(
        f"<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode><env:Value>{subcode}</env:Value>"
        "</env:Subcode></env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason></env:Fault>'
    )


def _handler(device: OnvifDevice) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = device.answer(body)
            data = answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler
