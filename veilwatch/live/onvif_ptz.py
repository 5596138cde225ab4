"""Real pan, tilt and zoom over ONVIF (onvif-zeep-async), for cameras whose head moves.

A steering step is the room's own: pan/tilt by a share of the view (-1..1; tilt + is down), zoom
by a step on the digital 1×–8× scale, or home. It becomes one ONVIF move, in the best space the
camera's PTZ node offers (read once, from GetNode, at the first use):

- relative pan/tilt in the FOV space (`TranslationSpaceFov`, where (1, 1) is the view's upper-right
  corner): x = 2·pan, y = −2·tilt — a step moves the picture by that share of itself;
- else relative pan/tilt in the generic space (−1..1 over the head's whole range): x = pan,
  y = −tilt — the same share of the travel a digital step moves the crop;
- else ContinuousMove at half speed, for |step| seconds, then Stop (approximate: ONVIF tells no
  speed in degrees; the move carries a Timeout too, so a lost Stop cannot leave the head turning);
- zoom: generic relative zoom of step / 7 (the lens's whole range stands for the digital 1×–8×),
  or continuous zoom; a camera without a zoom space zooms digitally instead (`zoom_on_head`);
- home: GotoHomePosition where the node has a home, else AbsoluteMove to the generic origin.

The driver runs the library's asyncio calls on an event loop thread of its own, so a slow camera
never blocks the server's loop; `move()` blocks its caller (a worker thread) for at most the
connect and call timeouts. It connects lazily, and again after any failure. Every failure is a
`PTZError` of one line naming the camera — never the host's credentials (the password is masked
in anything the library or the camera says) — logged once, without a traceback, and counted.

While the head moves the picture shifts under the tracker, so before sending a move the driver
calls `on_motion(seconds)` (the pipeline's `hold_for_motion`: frames captured meanwhile are
withheld, and the first after is searched in full); it then polls GetStatus and extends the hold
while the camera reports MOVING, plus a margin for the stream's own latency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import math
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from veilwatch.config import OnvifConfig
from veilwatch.errors import PTZError
from veilwatch.live.ptz import MAX_ZOOM, MIN_ZOOM
from veilwatch.sources.urls import scrub

log = logging.getLogger(__name__)

T = TypeVar("T")
PanTiltMode = Literal["fov", "generic", "continuous"]
ZoomMode = Literal["relative", "continuous"]

FOV_SPACE = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationSpaceFov"
GENERIC_PAN_TILT = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
GENERIC_ZOOM = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"
CONTINUOUS_SPEED = 0.5  # share of full speed for the ContinuousMove fallback
CONTINUOUS_S_PER_UNIT = 1.0  # …and how long it runs per unit of step
MOVE_HOLD_S = 1.0  # withheld from the moment a move is sent, before the camera reports anything
SETTLE_MARGIN_S = 1.0  # after the camera reports IDLE: frames still in the stream's pipeline
STATUS_POLL_S = 0.2
MAX_WATCH_S = 20.0  # stop polling a camera that reports MOVING for ever
PROXY_VARIABLES = ("http_proxy", "https_proxy")


@dataclass(frozen=True)
class HeadStep:
    """A steering step: pan/tilt by a share of the view (-1..1; tilt + is down), zoom on the 1–8 scale, or home."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    home: bool = False

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.pan, self.tilt, self.zoom)):
            raise ValueError(f"a steering step needs finite numbers, got {self.pan}, {self.tilt}, {self.zoom}")


@dataclass(frozen=True)
class HeadAbilities:
    """What the camera's PTZ node offers, as far as steering needs it."""

    profile: str  # the media profile token every PTZ call names
    pan_tilt: PanTiltMode | None
    zoom: ZoomMode | None
    home: bool  # GotoHomePosition
    absolute: bool  # AbsoluteMove (the home fallback)


@dataclass(frozen=True)
class HeadMove:
    """What was sent (operation "": nothing), its ONVIF values, and whether the zoom went to the head (else digital)."""

    operation: str
    pan: float
    tilt: float
    zoom: float
    zoom_on_head: bool


@dataclass(frozen=True)
class HeadStats:
    """Moves sent and failures since start, and the last failure's line."""

    moves: int
    errors: int
    last_error: str | None


def onvif_values(step: HeadStep, abilities: HeadAbilities) -> tuple[float, float, float]:
    """The step in the node's spaces: (pan, tilt with up positive, zoom); zoom 0 where the head has none."""
    pan, tilt = step.pan, -step.tilt  # ONVIF tilts up for positive y; the room's tilt + is down
    if abilities.pan_tilt == "fov":
        pan, tilt = 2 * pan, 2 * tilt  # FOV space: 1 is from the centre of the view to its edge
    elif abilities.pan_tilt == "generic":
        pan, tilt = _clamp(pan, -1, 1), _clamp(tilt, -1, 1)
    zoom = _clamp(step.zoom / (MAX_ZOOM - MIN_ZOOM), -1, 1) if abilities.zoom is not None else 0.0
    return pan, tilt, zoom


class OnvifPTZ:
    """One camera's ONVIF PTZ head: `move()` and `close()`; connects on first use, on a loop thread of its own."""

    def __init__(
        self,
        camera: str,
        config: OnvifConfig,
        *,
        on_motion: Callable[[float], None] | None = None,
        connect_timeout_s: float = 5.0,
        call_timeout_s: float = 3.0,
    ) -> None:
        self.camera = camera
        self._config = config
        self._on_motion = on_motion
        self.connect_timeout_s = connect_timeout_s
        self.call_timeout_s = call_timeout_s
        self._lock = threading.Lock()  # one move at a time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Loop-thread state.
        self._device: Any = None  # onvif.ONVIFCamera
        self._ptz: Any = None  # its PTZ service
        self._abilities: HeadAbilities | None = None
        self._watch: asyncio.Task[None] | None = None
        # Counters: written on the loop thread (or by `_run` when the loop is stuck), read as a snapshot.
        self._moves = 0
        self._errors = 0
        self._last_error: str | None = None

    # --- public ------------------------------------------------------------------------------------

    def move(self, step: HeadStep) -> HeadMove:
        """Steer the head; blocks for at most about the connect and call timeouts; PTZError on any failure."""
        continuous = CONTINUOUS_S_PER_UNIT * max(abs(step.pan), abs(step.tilt), abs(step.zoom), 0.0)
        budget = self.connect_timeout_s + 2 * self.call_timeout_s + continuous
        with self._lock:
            return self._run(self._move(step), budget)

    def abilities(self) -> HeadAbilities:
        """What the head offers (connecting if need be); PTZError on failure."""
        with self._lock:
            return self._run(self._connected(), self.connect_timeout_s + 1)

    def stats(self) -> HeadStats:
        """Moves and failures so far."""
        return HeadStats(self._moves, self._errors, self._last_error)

    def close(self) -> None:
        """Disconnect and stop the loop thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(self.call_timeout_s + 6)
            except Exception as exc:  # closing must not raise; the thread goes anyway
                log.warning("camera %s: closing the ONVIF connection failed: %s", self.camera, self._redact(str(exc)))
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> OnvifPTZ:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop thread ---------------------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T], budget_s: float) -> T:
        """Run a coroutine on this head's loop and wait for it; every failure becomes one PTZError."""
        if self._closed:
            work.close()
            raise PTZError(f"camera {self.camera}: the PTZ head was closed", camera=self.camera)
        future = asyncio.run_coroutine_threadsafe(self._guarded(work, budget_s), self._started_loop())
        try:
            return future.result(budget_s + 1.0)
        except concurrent.futures.TimeoutError:  # the loop itself is stuck: give up on this call
            future.cancel()
            raise self._failed(f"no answer within {budget_s:g} s") from None

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"onvif-{self.camera}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    async def _guarded(self, work: Coroutine[Any, Any, T], budget_s: float) -> T:
        try:
            return await asyncio.wait_for(work, budget_s)
        except PTZError as exc:
            await self._disconnect()
            raise self._failed(str(exc)) from None
        except TimeoutError:
            await self._disconnect()
            raise self._failed("no answer from the camera's ONVIF service in time") from None
        except Exception as exc:  # the library raises aiohttp, zeep and its own errors: one line each
            await self._disconnect()
            raise self._failed(_reason(exc)) from None

    def _failed(self, reason: str) -> PTZError:
        message = self._redact(f"camera {self.camera}: PTZ over ONVIF failed: {reason}")
        self._errors += 1
        self._last_error = message
        log.warning("%s", message)
        return PTZError(message, camera=self.camera)

    def _redact(self, text: str) -> str:
        """The text without the password (whatever the camera or the library echoed) or URL credentials."""
        password = self._config.password
        if password:
            text = text.replace(password, "***")
        return " ".join(scrub(text).split())

    async def _call(self, operation: str, params: dict[str, Any]) -> Any:
        """One PTZ service call, bounded by the call timeout."""
        try:
            return await asyncio.wait_for(getattr(self._ptz, operation)(params), self.call_timeout_s)
        except TimeoutError:
            raise PTZError(f"{operation}: no answer within {self.call_timeout_s:g} s", camera=self.camera) from None

    # --- connecting --------------------------------------------------------------------------------

    async def _connected(self) -> HeadAbilities:
        if self._abilities is None:
            try:
                await asyncio.wait_for(self._connect(), self.connect_timeout_s)
            except TimeoutError:
                message = f"no answer from the camera's ONVIF service within {self.connect_timeout_s:g} s"
                raise PTZError(message, camera=self.camera) from None
        if self._abilities is None:  # _connect sets it or raises; this keeps the type honest
            raise PTZError("the camera's PTZ node could not be read", camera=self.camera)
        return self._abilities

    async def _connect(self) -> None:
        # Built on this loop (its aiohttp sessions belong to it); the import blocks only this private loop.
        self._device = _new_camera(self._config)
        await self._device.update_xaddrs()
        media = await self._device.create_media_service()
        profiles = await media.GetProfiles()
        profile = next((p for p in profiles or [] if getattr(p, "PTZConfiguration", None) is not None), None)
        if profile is None:
            raise PTZError("no media profile of the camera has a PTZ configuration", camera=self.camera)
        self._ptz = await self._device.create_ptz_service()
        ptz_config = profile.PTZConfiguration
        try:
            node = await self._call("GetNode", {"NodeToken": ptz_config.NodeToken})
        except Exception as exc:  # some cameras answer GetNode badly; their configuration's defaults still tell
            reason = self._redact(_reason(exc))
            log.info("camera %s: GetNode failed (%s); using the PTZ configuration's defaults", self.camera, reason)
            node = None
        self._abilities = _abilities(str(profile.token), node, ptz_config)
        log.info("camera %s: ONVIF PTZ ready (%s)", self.camera, self._abilities)

    async def _shutdown(self) -> None:
        await self._disconnect()
        await asyncio.get_running_loop().shutdown_default_executor()  # the library's WSDL loading threads

    async def _disconnect(self) -> None:
        await self._stop_watching()
        device, self._device, self._ptz, self._abilities = self._device, None, None, None
        if device is not None:
            try:
                await asyncio.wait_for(device.close(), self.call_timeout_s)
            except Exception as exc:  # the connection is dropped either way
                log.debug("camera %s: closing ONVIF sessions: %s", self.camera, self._redact(_reason(exc)))

    # --- moving ------------------------------------------------------------------------------------

    async def _move(self, step: HeadStep) -> HeadMove:
        abilities = await self._connected()
        await self._stop_watching()
        moved = await (self._home(abilities) if step.home else self._step(step, abilities))
        if moved.operation:
            self._moves += 1
            self._watch = asyncio.get_running_loop().create_task(self._watch_motion(abilities.profile))
        return moved

    async def _step(self, step: HeadStep, abilities: HeadAbilities) -> HeadMove:
        """A relative move where the node has the spaces; a continuous one for what it has not."""
        if (step.pan or step.tilt) and abilities.pan_tilt is None:
            raise PTZError("the camera's PTZ node offers no pan/tilt move", camera=self.camera)
        pan, tilt, zoom = onvif_values(step, abilities)
        translation: dict[str, Any] = {}
        if abilities.pan_tilt in ("fov", "generic") and (pan or tilt):
            space = FOV_SPACE if abilities.pan_tilt == "fov" else GENERIC_PAN_TILT
            translation["PanTilt"] = {"x": pan, "y": tilt, "space": space}
        if abilities.zoom == "relative" and zoom:
            translation["Zoom"] = {"x": zoom, "space": GENERIC_ZOOM}
        continuous_pt = (pan, tilt) if abilities.pan_tilt == "continuous" else (0.0, 0.0)
        continuous_zoom = zoom if abilities.zoom == "continuous" else 0.0
        operation = "RelativeMove" if translation else ""
        if translation:
            self._hold(MOVE_HOLD_S)  # before the head turns: nothing captured from now on is shown unsearched
            await self._call("RelativeMove", {"ProfileToken": abilities.profile, "Translation": translation})
        if any(continuous_pt) or continuous_zoom:
            await self._continuous(abilities.profile, continuous_pt, continuous_zoom)
            operation = operation or "ContinuousMove"
        return HeadMove(operation, pan, tilt, zoom, abilities.zoom is not None)

    async def _continuous(self, profile: str, pan_tilt: tuple[float, float], zoom: float) -> None:
        """Move at CONTINUOUS_SPEED for as long as the largest component asks, then stop."""
        longest = max(abs(pan_tilt[0]), abs(pan_tilt[1]), abs(zoom))
        seconds = longest * CONTINUOUS_S_PER_UNIT
        scale = CONTINUOUS_SPEED / longest
        velocity: dict[str, Any] = {}
        if any(pan_tilt):
            velocity["PanTilt"] = {"x": pan_tilt[0] * scale, "y": pan_tilt[1] * scale}
        if zoom:
            velocity["Zoom"] = {"x": zoom * scale}
        params = {"ProfileToken": profile, "Velocity": velocity, "Timeout": dt.timedelta(seconds=seconds)}
        self._hold(seconds + MOVE_HOLD_S)  # the whole turn, and the usual allowance after it
        await self._call("ContinuousMove", params)
        try:
            await asyncio.sleep(seconds)
        finally:  # also when cancelled: never leave the head turning
            await self._call("Stop", {"ProfileToken": profile, "PanTilt": True, "Zoom": True})

    async def _home(self, abilities: HeadAbilities) -> HeadMove:
        profile = abilities.profile
        self._hold(MOVE_HOLD_S)
        if abilities.home:
            await self._call("GotoHomePosition", {"ProfileToken": profile})
            return HeadMove("GotoHomePosition", 0.0, 0.0, 0.0, abilities.zoom is not None)
        if abilities.absolute:
            position: dict[str, Any] = {"PanTilt": {"x": 0.0, "y": 0.0}}
            await self._call("AbsoluteMove", {"ProfileToken": profile, "Position": position})
            return HeadMove("AbsoluteMove", 0.0, 0.0, 0.0, False)
        raise PTZError("the camera has no home position and no absolute move", camera=self.camera)

    async def _stop_watching(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    def _hold(self, seconds: float) -> None:
        if self._on_motion is None:
            return
        try:
            self._on_motion(seconds)
        except Exception as exc:  # the callback is the pipeline's; a fault there must not stop steering
            log.warning("camera %s: motion hold failed: %s", self.camera, exc)

    async def _watch_motion(self, profile: str) -> None:
        """Extend the hold while the camera reports MOVING, and once more when it stops."""
        deadline = asyncio.get_running_loop().time() + MAX_WATCH_S
        while asyncio.get_running_loop().time() < deadline:
            try:
                status = await self._call("GetStatus", {"ProfileToken": profile})
            except Exception as exc:  # GetStatus is optional: the first hold stands
                log.debug("camera %s: GetStatus failed: %s", self.camera, self._redact(_reason(exc)))
                return
            moving = _moving(status)
            if moving is None:
                return
            self._hold(SETTLE_MARGIN_S)
            if not moving:
                return
            await asyncio.sleep(STATUS_POLL_S)


# --- helpers ---------------------------------------------------------------------------------------


def _new_camera(config: OnvifConfig) -> Any:
    """An onvif.ONVIFCamera for the config, built without the library's process-wide side effects.

    Importing `onvif` calls logging.basicConfig (a root handler at INFO) and the constructor deletes
    http_proxy/https_proxy from the environment; both are undone here. Local WSDL files only (the
    package ships them) and no zeep cache file (`no_cache`): nothing is fetched or written.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = {name: os.environ[name] for name in PROXY_VARIABLES if name in os.environ}
    try:
        from onvif import ONVIFCamera

        return ONVIFCamera(config.host, config.port, config.user, config.password, no_cache=True)
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        os.environ.update(saved)


def _abilities(profile: str, node: Any, ptz_config: Any) -> HeadAbilities:
    """The node's spaces, or (without a node) the configuration's default spaces."""
    if node is not None and getattr(node, "SupportedPTZSpaces", None) is not None:
        spaces = node.SupportedPTZSpaces
        relative = [str(s.URI) for s in spaces.RelativePanTiltTranslationSpace or []]
        pan_tilt: PanTiltMode | None = (
            "fov" if FOV_SPACE in relative else "generic" if GENERIC_PAN_TILT in relative else None
        )
        if pan_tilt is None and spaces.ContinuousPanTiltVelocitySpace:
            pan_tilt = "continuous"
        relative_zoom = GENERIC_ZOOM in [str(s.URI) for s in spaces.RelativeZoomTranslationSpace or []]
        zoom: ZoomMode | None = (
            "relative" if relative_zoom else "continuous" if spaces.ContinuousZoomVelocitySpace else None
        )
        home = bool(getattr(node, "HomeSupported", False))
        return HeadAbilities(profile, pan_tilt, zoom, home, bool(spaces.AbsolutePanTiltPositionSpace))
    relative_pt = getattr(ptz_config, "DefaultRelativePanTiltTranslationSpace", None)
    continuous_pt = getattr(ptz_config, "DefaultContinuousPanTiltVelocitySpace", None)
    pan_tilt = "generic" if relative_pt else "continuous" if continuous_pt else None
    relative_zoom_space = getattr(ptz_config, "DefaultRelativeZoomTranslationSpace", None)
    continuous_zoom = getattr(ptz_config, "DefaultContinuousZoomVelocitySpace", None)
    zoom = "relative" if relative_zoom_space else "continuous" if continuous_zoom else None
    absolute = bool(getattr(ptz_config, "DefaultAbsolutePantTiltPositionSpace", None))  # sic: ONVIF's spelling
    return HeadAbilities(profile, pan_tilt, zoom, True, absolute)  # home unknown: try it


def _moving(status: Any) -> bool | None:
    """Whether GetStatus says the head moves; None when it does not say."""
    move_status = getattr(status, "MoveStatus", None)
    if move_status is None:
        return None
    states = [str(getattr(move_status, axis, None) or "").upper() for axis in ("PanTilt", "Zoom")]
    if "MOVING" in states:
        return True
    return False if "IDLE" in states else None


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong, from the library's (aiohttp, zeep, onvif) exceptions."""
    from zeep.exceptions import Fault, TransportError

    if isinstance(exc, Fault):
        subcodes = " ".join(str(code) for code in (getattr(exc, "subcodes", None) or []))
        if "NotAuthorized" in subcodes or "not authorized" in str(exc.message or "").lower():
            return "the camera refused the ONVIF user name or password"
        return f"the camera refused the request: {exc.message or subcodes or 'SOAP fault'}"
    if isinstance(exc, TransportError):
        if exc.status_code in (401, 403):
            return "the camera refused the ONVIF user name or password"
        return f"the camera answered HTTP {exc.status_code}"
    if isinstance(exc, OSError):
        return f"cannot reach the camera's ONVIF service ({exc.strerror or type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    if "support service: ptz" in text.lower():
        return "the camera does not offer the ONVIF PTZ service"
    return text


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))
