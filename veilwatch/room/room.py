"""`open_room(config)`: every service of `veilwatch serve`, built once, and closed in reverse by `Room.close()`.

Files are read and checked first (the vault's public file, the log and pseudonym keys), before
anything is opened; then each resource is opened on one `ExitStack` the moment it exists, so a
start that fails at any step closes what it had opened — the database and its writer thread,
cameras, recorders — and raises the step's one-line error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from veilwatch.audit.log import AuditLog
from veilwatch.audit.note import Verifier
from veilwatch.audit.tlogwitness import WitnessEndpoint, Witnessing
from veilwatch.clips.exporting import ExportService
from veilwatch.config import ServeConfig
from veilwatch.errors import ConfigError
from veilwatch.pipeline.engine import Engine
from veilwatch.room.cameras import CameraParts, Cameras, open_cameras
from veilwatch.room.janitor import janitor
from veilwatch.room.records import Records, private_database, read_keys, records_over
from veilwatch.room.refusals import RefusalTally
from veilwatch.room.setup import SetupToken
from veilwatch.settings import EngineSettings
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sealed_faces import SealedFaceStore
from veilwatch.storage.sessions import SessionStore
from veilwatch.storage.unmask_requests import UnmaskStore
from veilwatch.vault.desk import UnmaskDesk
from veilwatch.vault.public import VaultPublic

__all__ = ["Room", "config_digest", "open_room"]

REDACTED = "***"
EngineFactory = Callable[[EngineSettings], Engine]  # one engine (model) per distinct engine settings


@dataclass(frozen=True)
class Room:
    """The running monitoring room: its config and services, none of them replaced after start."""

    config: ServeConfig
    records: Records  # database, tamper-evident log, users, the action recorder
    sessions: SessionStore
    segments: SegmentIndex
    faces: SealedFaceStore  # raw faces, sealed to the vault's day keys
    unmasks: UnmaskStore
    cameras: Cameras
    setup: SetupToken
    refusals: RefusalTally  # anonymous refusals: one leaf per client a minute
    exports: ExportService
    vault: VaultPublic | None  # None: no vault configured, raw faces are never kept
    unmask: UnmaskDesk | None  # None with no vault
    _closer: contextlib.ExitStack = field(repr=False, compare=False)

    def close(self) -> None:
        """Stop cameras, recorders, retention and storage, in reverse order of starting (idempotent)."""
        self._closer.close()

    def __enter__(self) -> Room:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_room(config: ServeConfig, *, engine_factory: EngineFactory | None = None) -> Room:
    """Check the files, open storage, start every camera; the running room (close it, or use `with`)."""
    data_dir = config.server.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    vault = load_vault(config)
    keys = read_keys(data_dir, config.audit.log_origin)
    with contextlib.ExitStack() as stack:
        db = private_database(data_dir)
        stack.callback(db.close)
        segments = SegmentIndex(db, data_dir)
        segments.heal()
        records = records_over(
            db,
            keys,
            config.audit.checkpoint_interval_s,
            tiles_dir=data_dir / "log",  # C2SP tlog-tiles, served under /log/ (routes/tiles.py)
            witness_quorum=config.audit.witness_quorum,
        )
        faces = SealedFaceStore(db, data_dir)
        unmasks = UnmaskStore(db)
        record_config(records, config, vault)
        desk = _unmask_desk(config, vault, records, unmasks, faces, segments)
        engines = _shared_engines(engine_factory or Engine)
        cameras = open_cameras(stack, CameraParts(config, engines, segments, faces, vault, records.recorder))
        stack.enter_context(janitor(config, segments, faces))
        witnessing = _witnessing(config, records.audit)
        if witnessing is not None:
            stack.callback(witnessing.stop)
        return Room(
            config=config,
            records=records,
            sessions=SessionStore(db),
            segments=segments,
            faces=faces,
            unmasks=unmasks,
            cameras=cameras,
            setup=SetupToken(lambda: records.users.count() == 0),
            refusals=RefusalTally(),
            exports=ExportService(segments, records.audit, records.recorder, data_dir),
            vault=vault,
            unmask=desk,
            _closer=stack.pop_all(),  # started: from here on the room closes it all
        )
    raise AssertionError("unreachable: the stack either returned the room or raised")  # for mypy


def _unmask_desk(
    config: ServeConfig,
    vault: VaultPublic | None,
    records: Records,
    unmasks: UnmaskStore,
    faces: SealedFaceStore,
    segments: SegmentIndex,
) -> UnmaskDesk | None:
    """The unmask desk over the vault (none without one); requests of an earlier run are closed."""
    if vault is None:
        return None
    desk = UnmaskDesk(
        vault,
        unmasks,
        faces,
        segments,
        records.recorder.record,
        lambda name: camera.fps if (camera := config.camera(name)) else 10.0,
        request_ttl_s=config.vault.request_ttl_hours * 3600,
        clip_ttl_s=config.vault.clip_ttl_minutes * 60,
        # With witnesses, an unmasked clip waits for a published, cosigned checkpoint of its entry.
        witnessed=records.audit.covers if config.audit.witness_quorum > 0 else None,
    )
    desk.expire_orphans()
    return desk


def record_config(records: Records, config: ServeConfig, vault: VaultPublic | None) -> None:
    """Log the configuration this server runs with, and whether it changed since the last start."""
    digest = config_digest(config)
    previous = records.actions.latest(ActionKind.CONFIG_LOAD)
    changed = previous is not None and previous.details.get("sha256") != digest
    records.recorder.record(
        ActionKind.CONFIG_LOAD, "system", "system", None,
        sha256=digest, changed=changed, cameras=[camera.name for camera in config.cameras],
        vault=vault.digest().hex() if vault else None,
    )  # fmt: skip


def load_vault(config: ServeConfig) -> VaultPublic | None:
    """The vault's public file, read and checked (ConfigError with the file's name when it cannot be used)."""
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


def _shared_engines(factory: EngineFactory) -> EngineFactory:
    """The factory, called once per distinct engine settings: cameras with the same settings share one model."""
    engines: dict[EngineSettings, Engine] = {}

    def engine(settings: EngineSettings) -> Engine:
        if settings not in engines:
            engines[settings] = factory(settings)
        return engines[settings]

    return engine


def _witnessing(config: ServeConfig, audit: AuditLog) -> Witnessing | None:
    """Start asking the configured witnesses for cosignatures (C2SP tlog-witness), if any have a URL."""
    keys = {Verifier.parse(key).name: Verifier.parse(key) for key in config.audit.witnesses}
    endpoints = [WitnessEndpoint(keys[name], url) for name, url in config.audit.witness_urls.items()]
    if not endpoints:
        return None
    witnessing = Witnessing(audit, endpoints, config.audit.checkpoint_interval_s)
    witnessing.start()
    return witnessing


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
