"""The composition root of `veilwatch serve`: builds the small services the web app depends on.

Nothing here is global: `Services.start(config)` opens the database, heals the recordings index,
loads the face model once, starts one live pipeline (and recorder) per camera, and returns the
object the app factory is given; `stop()` tears it all down, in reverse, idempotently.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from veilwatch.config import CameraConfig, ServeConfig
from veilwatch.live.control import ControlDesk, ControlEvent
from veilwatch.live.pipeline import CameraPipeline, LiveSettings, VeiledOutput
from veilwatch.live.presence import Presence
from veilwatch.pipeline.engine import Engine
from veilwatch.storage.actions import ActionLog, ActionRecord
from veilwatch.storage.db import Database
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.retention import RetentionPolicy, enforce, free_space
from veilwatch.storage.sessions import SessionStore
from veilwatch.storage.users import UserStore

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 60.0
RECORDER_QUEUE = 30  # frames a recorder may fall behind before frames are dropped (and counted)


class RecorderSink:
    """Feeds veiled frames to a camera's segment recorder on its own thread; drops, never blocks."""

    def __init__(self, recorder: SegmentRecorder, name: str) -> None:
        self._recorder = recorder
        self._queue: queue.Queue[VeiledOutput | None] = queue.Queue(maxsize=RECORDER_QUEUE)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"record-{name}", daemon=True)
        self._thread.start()

    def __call__(self, output: VeiledOutput) -> None:
        try:
            self._queue.put_nowait(output)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._recorder.write(item.pixels, item.wall_time)
            except Exception:  # a failing disk must not stop the live view
                log.exception("recording failed")

    def close(self) -> None:
        """Finish the current segment."""
        self._queue.put(None)
        self._thread.join(30)
        self._recorder.close()


@dataclass
class Services:
    """What the web app needs, built once."""

    config: ServeConfig
    db: Database
    users: UserStore
    sessions: SessionStore
    actions: ActionLog
    segments: SegmentIndex
    presence: Presence
    desk: ControlDesk
    cameras: dict[str, CameraPipeline] = field(default_factory=dict)
    recorders: dict[str, RecorderSink] = field(default_factory=dict)
    setup_token: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _janitor: threading.Thread | None = None

    @classmethod
    def start(cls, config: ServeConfig, *, engine_factory: Callable[[], Engine] | None = None) -> Services:
        """Open storage, start every camera, and return the running services."""
        data_dir = config.server.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(data_dir / "veilwatch.sqlite3")
        actions = ActionLog(db)
        segments = SegmentIndex(db, data_dir)
        segments.heal()
        users = UserStore(db)
        services = cls(
            config=config,
            db=db,
            users=users,
            sessions=SessionStore(db),
            actions=actions,
            segments=segments,
            presence=Presence(),
            desk=ControlDesk(on_event=lambda event: _record_control(actions, event)),
            setup_token=secrets.token_urlsafe(16) if users.count() == 0 else None,
        )
        try:
            services._start_cameras(engine_factory or _live_engine(config))
        except BaseException:
            services.stop()
            raise
        services._janitor = threading.Thread(target=services._keep_tidy, name="retention", daemon=True)
        services._janitor.start()
        return services

    def _start_cameras(self, engine_factory: Callable[[], Engine]) -> None:
        from veilwatch.sources.camera import open_source

        engine = engine_factory()
        for camera in self.config.cameras:
            sinks = []
            if camera.record:
                sink = RecorderSink(self._recorder(camera), camera.name)
                self.recorders[camera.name] = sink
                sinks.append(sink)
            settings = LiveSettings(width=camera.width, height=camera.height, fps=camera.fps)
            pipeline = CameraPipeline(camera.name, open_source(camera.source), engine, settings, sinks)
            self.cameras[camera.name] = pipeline
            pipeline.start()

    def _recorder(self, camera: CameraConfig) -> SegmentRecorder:
        return SegmentRecorder(
            camera.name,
            self.config.server.data_dir,
            self.segments,
            camera.fps,
            camera.width,
            camera.height,
            min_free_bytes=self.config.server.min_free_disk_mb * 1_000_000,
        )

    def _keep_tidy(self) -> None:
        policies = {
            c.name: RetentionPolicy(max_age_s=c.retention_days * 86400, max_bytes=c.retention_mb * 1_000_000)
            for c in self.config.cameras
        }
        min_free = self.config.server.min_free_disk_mb * 1_000_000
        while not self._stop.wait(RETENTION_INTERVAL_S):
            try:
                enforce(self.segments, policies, time.time())
                free_space(self.segments, self.config.server.data_dir, min_free)
            except Exception:  # retry next round; never stop the room for this
                log.exception("retention pass failed")

    def stop(self) -> None:
        """Stop cameras, recorders and storage (idempotent)."""
        self._stop.set()
        for pipeline in self.cameras.values():
            pipeline.stop()
        for sink in self.recorders.values():
            sink.close()
        self.cameras.clear()
        self.recorders.clear()
        if self._janitor is not None:
            self._janitor.join(5)
        self.db.close()

    def record(self, kind: str, actor: str, role: str, camera: str | None = None, **details: object) -> None:
        """Store one action record (view, control, playback, login…)."""
        self.actions.record(ActionRecord(time.time(), actor, role, kind, camera, details))


def _record_control(actions: ActionLog, event: ControlEvent) -> None:
    actions.record(ActionRecord(event.at, event.actor, event.role, event.kind, event.camera, dict(event.details)))


def _live_engine(config: ServeConfig) -> Callable[[], Engine]:
    def build() -> Engine:
        from veilwatch.settings import AnonymizeSettings

        engine = config.engine
        return Engine(AnonymizeSettings(detector=engine.detector, tracker=engine.tracker, veil=engine.veil))

    return build


def data_path(config: ServeConfig, relative: str) -> Path:
    """A path inside the data folder (recordings are indexed relative to it)."""
    return config.server.data_dir / relative
