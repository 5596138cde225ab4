"""The composition root of `veilwatch serve`: builds the small services the web app depends on.

Nothing here is global: `Services.start(config)` opens the database, heals the recordings index,
loads the face model once, starts one live pipeline (and recorder) per camera, and returns the
object the app factory is given; `stop()` tears it all down, in reverse, idempotently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from veilwatch.audit.log import AuditLog
from veilwatch.audit.note import Verifier
from veilwatch.audit.pseudonyms import Pseudonyms
from veilwatch.audit.tlogwitness import WitnessEndpoint, Witnessing
from veilwatch.config import CameraConfig, ServeConfig
from veilwatch.errors import ConfigError, StorageError
from veilwatch.live.control import ControlDesk, ControlEvent
from veilwatch.live.onvif_ptz import OnvifPTZ
from veilwatch.live.pipeline import CameraPipeline, RawFacePixels, RawFaceSink, VeiledOutput
from veilwatch.live.presence import Presence
from veilwatch.pipeline.engine import Engine
from veilwatch.server.guards import RefusalTally
from veilwatch.settings import EngineSettings
from veilwatch.storage.actions import ActionLog, ActionRecord
from veilwatch.storage.db import Database
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.retention import RetentionPolicy, enforce, free_space
from veilwatch.storage.sealed_faces import FaceChunkWriter, SealedFaceStore, Sealer
from veilwatch.storage.sessions import SessionStore
from veilwatch.storage.unmask_requests import UnmaskStore
from veilwatch.storage.users import UserStore
from veilwatch.vault.desk import UnmaskDesk
from veilwatch.vault.public import VaultPublic

log = logging.getLogger(__name__)

REDACTED = "***"
RETENTION_INTERVAL_S = 60.0
EngineFactory = Callable[[EngineSettings], Engine]  # one engine (model) per distinct engine settings
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
    faces: SealedFaceStore
    unmasks: UnmaskStore
    audit: AuditLog  # the tamper-evident log (veilwatch.audit); its key lives in data_dir/keys
    vault: VaultPublic | None = None  # None: no vault configured, raw faces are never kept
    unmask_desk: UnmaskDesk | None = None
    cameras: dict[str, CameraPipeline] = field(default_factory=dict)
    recorders: dict[str, RecorderSink] = field(default_factory=dict)
    names: PublicNames | None = None  # how users appear in the public log (visitors by pseudonym)
    heads: dict[str, OnvifPTZ] = field(default_factory=dict)  # cameras whose real head steers (ONVIF)
    setup_token: str | None = None
    refusals: RefusalTally = field(default_factory=RefusalTally)  # anonymous refusals: one leaf per client a minute
    _stop: threading.Event = field(default_factory=threading.Event)
    _janitor: threading.Thread | None = None
    witnessing: Witnessing | None = None  # asks [audit] witness_urls to cosign (C2SP tlog-witness)

    @classmethod
    def start(
        cls, config: ServeConfig, *, engine_factory: Callable[[EngineSettings], Engine] | None = None
    ) -> Services:
        """Open storage, start every camera, and return the running services."""
        data_dir = config.server.data_dir
        db = _open_private(data_dir)
        segments = SegmentIndex(db, data_dir)
        segments.heal()
        users = UserStore(db)
        try:
            audit = AuditLog.open(
                db,
                data_dir / "keys",
                config.audit.log_origin,
                checkpoint_interval_s=config.audit.checkpoint_interval_s,
                tiles_dir=data_dir / "log",  # C2SP tlog-tiles, served under /log/ (routes/tiles.py)
                witness_quorum=config.audit.witness_quorum,
            )
        except BaseException:
            db.close()
            raise
        # Every action goes into the Merkle log before it is stored, served or takes effect.
        actions = ActionLog(db, audit.append)
        names = PublicNames(Pseudonyms.open(data_dir / "keys"), users)
        services = cls(
            config=config,
            db=db,
            users=users,
            sessions=SessionStore(db),
            actions=actions,
            segments=segments,
            presence=Presence(),
            desk=ControlDesk(on_event=lambda event: _record_control(actions, names, event)),
            faces=SealedFaceStore(db, data_dir),
            unmasks=UnmaskStore(db),
            audit=audit,
            names=names,
            vault=_load_vault(config),
            setup_token=secrets.token_urlsafe(16) if users.count() == 0 else None,
        )
        try:
            services._record_config()
        except BaseException:
            services.stop()
            raise
        if services.vault is not None:
            services.unmask_desk = UnmaskDesk(
                services.vault,
                services.unmasks,
                services.faces,
                segments,
                services.record,
                lambda name: camera.fps if (camera := config.camera(name)) else 10.0,
                request_ttl_s=config.vault.request_ttl_hours * 3600,
                clip_ttl_s=config.vault.clip_ttl_minutes * 60,
                # With witnesses, an unmasked clip waits for a published, cosigned checkpoint of its entry.
                witnessed=audit.covers if config.audit.witness_quorum > 0 else None,
            )
            try:
                services.unmask_desk.expire_orphans()
            except BaseException:
                services.stop()
                raise
        try:
            services._start_cameras(engine_factory or Engine)
        except BaseException:
            services.stop()
            raise
        services._janitor = threading.Thread(target=services._keep_tidy, name="retention", daemon=True)
        services._janitor.start()
        services.witnessing = _witnessing(config, audit)
        return services

    def _record_config(self) -> None:
        """Log the configuration this server runs with, and whether it changed since the last start."""
        digest = config_digest(self.config)
        previous = self.actions.latest("config.load")
        changed = previous is not None and previous.details.get("sha256") != digest
        self.record(
            "config.load",
            "system",
            "system",
            None,
            sha256=digest,
            changed=changed,
            cameras=[camera.name for camera in self.config.cameras],
            vault=self.vault.digest().hex() if self.vault else None,
        )

    def _start_cameras(self, engine_factory: EngineFactory) -> None:
        from veilwatch.sources.camera import open_source

        engines: dict[EngineSettings, Engine] = {}  # cameras with the same engine settings share one model
        for camera in self.config.cameras:
            engine = engines.get(camera.engine) or engines.setdefault(camera.engine, engine_factory(camera.engine))
            sinks = []
            raw_faces: RawFaceSink | None = None  # only the sealed store ever gets raw faces
            keep_faces = camera.record and self.vault is not None
            if camera.record:
                seconds = self.config.server.segment_seconds
                faces = FaceChunkWriter(camera.name, self.faces, self._sealer(), seconds) if keep_faces else None
                sink = RecorderSink(self._recorder(camera), camera.name, faces)
                self.recorders[camera.name] = sink
                sinks.append(sink)
                raw_faces = sink.seal if keep_faces else None
            pipeline = CameraPipeline(
                camera.name, open_source(camera.source), engine, camera.live, sinks, raw_faces=raw_faces
            )
            self.cameras[camera.name] = pipeline
            if camera.onvif is not None:  # connects at the first move; a dead head never stops the room
                timeout = camera.onvif.timeout_s
                self.heads[camera.name] = OnvifPTZ(
                    camera.name,
                    camera.onvif,
                    on_motion=pipeline.hold_for_motion,
                    connect_timeout_s=timeout,
                    call_timeout_s=timeout,
                )
            pipeline.start()

    def _sealer(self) -> Sealer:
        """Seals a face chunk to its day's public key (no key for that day: the chunk is refused, never kept clear)."""
        vault = self.vault
        if vault is None:
            raise ConfigError("no vault configured")

        def sealer(day: str, payload: bytes, associated: bytes) -> bytes:
            from veilwatch.vault.sealing import seal

            return seal(payload, vault.epoch_key(day), associated)

        return sealer

    def _recorder(self, camera: CameraConfig) -> SegmentRecorder:
        return SegmentRecorder(
            camera.name,
            self.config.server.data_dir,
            self.segments,
            camera.fps,
            camera.width,
            camera.height,
            segment_seconds=self.config.server.segment_seconds,
            preset=self.config.server.record_preset,
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
                now = time.time()
                enforce(self.segments, policies, now)
                for name, policy in policies.items():
                    if policy.max_age_s is not None:
                        self.faces.delete_older(name, now - policy.max_age_s)
                free_space(self.segments, self.config.server.data_dir, min_free)
            except Exception:  # retry next round; never stop the room for this
                log.exception("retention pass failed")

    def stop(self) -> None:
        """Stop cameras, recorders and storage (idempotent)."""
        self._stop.set()
        for head in self.heads.values():
            head.close()
        self.heads.clear()
        for pipeline in self.cameras.values():
            pipeline.stop()
        for sink in self.recorders.values():
            sink.close()
        self.cameras.clear()
        self.recorders.clear()
        if self._janitor is not None:
            self._janitor.join(5)
        if self.witnessing is not None:
            self.witnessing.stop()
        self.db.close()

    def record(self, kind: str, actor: str, role: str, camera: str | None = None, **details: object) -> int:
        """Store one action record (view, control, playback, login…); visitors appear by pseudonym."""
        if self.names is not None:
            actor, details = self.names.actor(actor, role), self.names.details(details)
        _, index = self.actions.record_logged(ActionRecord(time.time(), actor, role, kind, camera, details))
        if index is None:  # the log is always there in a running server; this keeps the type honest
            raise StorageError("an action was stored without a log entry")
        return index


def _witnessing(config: ServeConfig, audit: AuditLog) -> Witnessing | None:
    """Start asking the configured witnesses for cosignatures, if any have a URL."""
    keys = {Verifier.parse(key).name: Verifier.parse(key) for key in config.audit.witnesses}
    endpoints = [WitnessEndpoint(keys[name], url) for name, url in config.audit.witness_urls.items()]
    if not endpoints:
        return None
    witnessing = Witnessing(audit, endpoints, config.audit.checkpoint_interval_s)
    witnessing.start()
    return witnessing


class PublicNames:
    """Users as the public log names them: staff as themselves, visitors (and unknown names) by pseudonym."""

    USER_KEYS = ("previous", "user", "account", "holder")  # detail fields that name a user
    ATTEMPT_KEY = "attempt"  # the name typed into a failed login: anyone's guess, its own pseudonym domain

    def __init__(self, pseudonyms: Pseudonyms, users: UserStore) -> None:
        self._pseudonyms = pseudonyms
        self._users = users

    def actor(self, name: str, role: str) -> str:
        """The actor field for a user of this role."""
        return self._pseudonyms.public(name, role)

    def details(self, details: Mapping[str, object]) -> dict[str, object]:
        """Details with every user name in them made public-safe (looked up: staff stay named)."""
        out = dict(details)
        for key in self.USER_KEYS:
            value = out.get(key)
            if isinstance(value, str) and value:
                user = self._users.by_name(value)
                out[key] = self._pseudonyms.public(value, str(user.role) if user else "visitor")
        attempt = out.get(self.ATTEMPT_KEY)
        if isinstance(attempt, str):
            out[self.ATTEMPT_KEY] = self._pseudonyms.attempted(attempt)
        return out


def _open_private(data_dir: Path) -> Database:
    """The database in a data folder only this server's user may enter (0700), its files 0600, whatever the umask."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # recordings, sealed faces, exports and keys live inside
    db = Database.open(data_dir / "veilwatch.sqlite3")
    for path in data_dir.glob("veilwatch.sqlite3*"):  # the index, its -wal and -shm (SQLite copies the mode later)
        path.chmod(0o600)
    return db


def _record_control(actions: ActionLog, names: PublicNames, event: ControlEvent) -> None:
    kind = f"control.{event.kind}"  # granted, queued, released, left, expired, takeover, refused
    actor, details = names.actor(event.actor, event.role), names.details(event.details)
    actions.record(ActionRecord(event.at, actor, event.role, kind, event.camera, details))


def _load_vault(config: ServeConfig) -> VaultPublic | None:
    path = config.vault.public_file
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the vault's public file: {exc.strerror or exc}", path=str(path)) from exc
    try:
        return VaultPublic.from_json(data)
    except ValueError as exc:
        raise ConfigError(f"not a vault public file: {exc}", path=str(path)) from exc


def config_digest(config: ServeConfig) -> str:
    """SHA-256 of the configuration with its secrets redacted: the public log must not let anyone guess them."""
    data = config.model_dump(mode="json")
    server = data["server"]
    if server.get("metrics_token"):
        server["metrics_token"] = REDACTED
    for camera, settings in zip(data["cameras"], config.cameras, strict=True):
        camera["source"] = settings.display_source  # user:password@ and secret query parameters masked
        if camera.get("onvif"):
            camera["onvif"]["password"] = REDACTED
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def data_path(config: ServeConfig, relative: str) -> Path:
    """A path inside the data folder (recordings are indexed relative to it)."""
    return config.server.data_dir / relative
