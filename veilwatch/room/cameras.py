"""One `CameraRoom` per camera (its config, live pipeline, recorder, face sealer, PTZ head, control
seat and watchers), and the `Cameras` registry the routes look them up in.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from veilwatch.access import may_view
from veilwatch.config import CameraConfig, ServeConfig
from veilwatch.errors import ConfigError
from veilwatch.live.control import ControlDesk, ControlEvent
from veilwatch.live.onvif_ptz import OnvifPTZ
from veilwatch.live.pipeline import CameraPipeline, RawFacePixels, RawFaceSink, VeiledOutput
from veilwatch.live.presence import Presence
from veilwatch.pipeline.engine import Engine
from veilwatch.room.actions import ActionRecorder
from veilwatch.settings import EngineSettings
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sealed_faces import FaceChunkWriter, SealedFaceStore, Sealer
from veilwatch.vault.public import VaultPublic

__all__ = ["CameraRoom", "Cameras", "RecorderSink", "open_cameras"]

log = logging.getLogger(__name__)

RECORDER_QUEUE = 30  # frames a recorder may fall behind before frames are dropped (and counted)


class RecorderSink:
    """Feeds veiled frames to a recorder (raw faces to the sealed store) on its own thread; drops, never blocks."""

    def __init__(self, recorder: SegmentRecorder, name: str, faces: FaceChunkWriter | None = None) -> None:
        self._recorder = recorder
        self._faces = faces
        # A frame's raw faces travel behind it on the same queue: room for both.
        depth = RECORDER_QUEUE * (2 if faces is not None else 1)
        self._queue: queue.Queue[VeiledOutput | RawFacePixels | None] = queue.Queue(maxsize=depth)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"record-{name}", daemon=True)
        self._thread.start()

    def __call__(self, output: VeiledOutput) -> None:
        try:
            self._queue.put_nowait(output)
        except queue.Full:
            self.dropped += 1

    def seal(self, raw: RawFacePixels) -> None:
        """The raw-face channel: a frame's unveiled face regions, for the sealed store only."""
        if self._faces is None:
            return
        try:
            self._queue.put_nowait(raw)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, RawFacePixels):
                    if self._faces is not None:
                        self._faces.add(item.wall_time, item.regions)  # sealed before anything is written
                else:
                    self._recorder.write(item.pixels, item.wall_time)
            except Exception:  # a failing disk must not stop the live view
                log.exception("recording failed")

    def close(self) -> None:
        """Finish the current segment."""
        self._queue.put(None)
        self._thread.join(30)
        self._recorder.close()
        if self._faces is not None:
            try:
                self._faces.flush()
            except Exception:  # the sealed chunk is lost, never written in the clear
                log.exception("sealing the last face chunk failed")


@dataclass(frozen=True)
class CameraRoom:
    """Everything about one camera while the room runs."""

    config: CameraConfig
    pipeline: CameraPipeline
    seat: ControlDesk  # who steers this camera, who waits
    presence: Presence  # who watches it
    recorder: RecorderSink | None = None  # None: the camera does not record
    head: OnvifPTZ | None = None  # None: steering moves the digital crop only

    @property
    def name(self) -> str:
        """The camera's name."""
        return self.config.name

    def may_view(self, role: str) -> bool:
        """Whether a role may watch this camera."""
        return may_view(role, self.config.viewers)


class Cameras:
    """The room's cameras by name, in configured order."""

    def __init__(self, rooms: Sequence[CameraRoom]) -> None:
        self._rooms = {room.name: room for room in rooms}

    def get(self, name: str) -> CameraRoom | None:
        """The camera of that name, if there is one."""
        return self._rooms.get(name)

    def __getitem__(self, name: str) -> CameraRoom:
        return self._rooms[name]

    def __iter__(self) -> Iterator[CameraRoom]:
        return iter(self._rooms.values())

    def __len__(self) -> int:
        return len(self._rooms)

    def visible_to(self, role: str) -> list[CameraRoom]:
        """The cameras a role may watch."""
        return [room for room in self if room.may_view(role)]


@dataclass(frozen=True)
class CameraParts:
    """What every camera shares: its engine (one per distinct engine settings), the recordings index, the sealed-face
    store, the vault."""

    config: ServeConfig
    engine: Callable[[EngineSettings], Engine]
    segments: SegmentIndex
    faces: SealedFaceStore
    vault: VaultPublic | None
    recorder: ActionRecorder


def open_cameras(stack: contextlib.ExitStack, parts: CameraParts) -> Cameras:
    """Start every camera; each one's stop goes onto `stack` as soon as it has started."""
    return Cameras([_open_camera(stack, parts, camera) for camera in parts.config.cameras])


def _open_camera(stack: contextlib.ExitStack, parts: CameraParts, camera: CameraConfig) -> CameraRoom:
    from veilwatch.sources.camera import open_source

    keep_faces = camera.record and parts.vault is not None
    sink = None
    raw_faces: RawFaceSink | None = None  # only the sealed store ever gets raw faces
    if camera.record:
        seconds = parts.config.server.segment_seconds
        faces = FaceChunkWriter(camera.name, parts.faces, _sealer(parts.vault), seconds) if keep_faces else None
        sink = RecorderSink(_segment_recorder(parts, camera), camera.name, faces)
        stack.callback(sink.close)  # closed after its pipeline stopped feeding it (the stack unwinds in reverse)
        raw_faces = sink.seal if keep_faces else None
    source = open_source(camera.source)
    engine = parts.engine(camera.engine)
    pipeline = CameraPipeline(camera.name, source, engine, camera.live, [sink] if sink else [], raw_faces=raw_faces)
    head = None
    if camera.onvif is not None:  # connects at the first move; a dead head never stops the room
        timeout = camera.onvif.timeout_s
        head = OnvifPTZ(
            camera.name, camera.onvif, on_motion=pipeline.hold_for_motion,
            connect_timeout_s=timeout, call_timeout_s=timeout,
        )  # fmt: skip
    pipeline.start()
    stack.callback(pipeline.stop)
    if head is not None:
        stack.callback(head.close)
    seat = ControlDesk(on_event=_control_recorder(parts.recorder))
    return CameraRoom(camera, pipeline, seat, Presence(), sink, head)


def _control_recorder(recorder: ActionRecorder) -> Callable[[ControlEvent], None]:
    """Control changes go into the log as `control.<event>` (granted, queued, released, left, expired, …)."""

    def record(event: ControlEvent) -> None:
        kind = ActionKind(f"control.{event.kind}")  # ValueError for a kind the log does not know
        recorder.record_at(event.at, kind, event.actor, event.role, event.camera, event.details)

    return record


def _sealer(vault: VaultPublic | None) -> Sealer:
    """Seals a face chunk to its day's public key (no key for that day: the chunk is refused, never kept clear)."""
    if vault is None:
        raise ConfigError("no vault configured")

    def sealer(day: str, payload: bytes, associated: bytes) -> bytes:
        from veilwatch.vault.sealing import seal

        return seal(payload, vault.epoch_key(day), associated)

    return sealer


def _segment_recorder(parts: CameraParts, camera: CameraConfig) -> SegmentRecorder:
    server = parts.config.server
    return SegmentRecorder(
        camera.name,
        server.data_dir,
        parts.segments,
        camera.fps,
        camera.width,
        camera.height,
        segment_seconds=server.segment_seconds,
        preset=server.record_preset,
        min_free_bytes=server.min_free_disk_mb * 1_000_000,
    )
