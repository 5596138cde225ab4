"""The configuration of `veilwatch serve`: one TOML file, validated once, unknown keys rejected.

    [server]
    host = "127.0.0.1"          # loopback unless told otherwise
    port = 8470
    data_dir = "veilwatch-data" # SQLite index and veiled recordings
    allowed_hosts = ["cameras.example.org"]  # Host names clients use (required on 0.0.0.0)

    [engine.detector]           # every camera's engine (`anonymize --config` takes the same tables)
    threshold = 0.2

    [live]                      # every camera's live view
    deadline_s = 0.5

    [[cameras]]
    name = "lobby"
    source = "rtsp://user:secret@10.0.0.5/stream1"
    location = "Main hall, north wall"
    purpose = "Visitor safety"
    retention_days = 7
    steerable = true
    viewers = ["visitor", "operator"]
    [cameras.engine.veil]       # this camera only, key by key over [engine]
    method = "mosaic"
    [cameras.live]              # this camera only, key by key over [live]
    fps = 15

    [audit]
    name = "cameras.example.org"  # checkpoints are signed for "cameras.example.org/audit"
    witnesses = ["witness.example.net/w1+1a2b3c4d+BM…"]  # from `veilwatch witness init`

A camera's `source` is validated (no process-spawning or file-reading pseudo-protocols) and its
credentials never leave this object unscrubbed: `display_source` is what pages and logs show.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from veilwatch.access import Role
from veilwatch.errors import ConfigError
from veilwatch.settings import AnonymizeSettings, DetectorSettings, EngineSettings, LiveSettings

RecordPreset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
DEFAULT_VIEWERS: tuple[Role, ...] = (Role.VISITOR, Role.OPERATOR, Role.AUDITOR)
VIEW_KEYS = ("width", "height", "fps")
M = TypeVar("M", bound=BaseModel)
HOST_PATTERN = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# The engine `serve` uses unless told otherwise: one inference thread per camera (cameras share the
# cores); faces from 16 px; the fine level searches wherever the picture moves on every frame, so
# the full pass can be slow.
LIVE_ENGINE = EngineSettings(detector=DetectorSettings(min_face=16.0, threads=1, full_scan_seconds=3.0))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """Where and how the monitoring room listens."""

    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs TLS")
    port: int = Field(8470, ge=0, le=65535, description="TCP port (0: any free port)")
    data_dir: Path = Field(Path("veilwatch-data"), description="SQLite index and veiled recordings")
    tls_cert: Path | None = Field(None, description="PEM certificate for HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key for HTTPS")
    behind_tls_proxy: bool = Field(
        False, description="the operator states that a TLS-terminating proxy sits in front (allows a public bind)"
    )
    min_free_disk_mb: int = Field(512, ge=0, description="evict the oldest recordings below this much free disk")
    segment_seconds: float = Field(
        10.0, ge=1, le=600, description="length of each recording segment (and of each sealed face chunk)"
    )
    # Every camera's veiled video is encoded once more to be recorded, on the cores the detector needs.
    record_preset: RecordPreset = Field(
        "ultrafast", description="x264 speed preset of the recordings: faster costs less CPU, makes larger files"
    )
    metrics_token: str | None = Field(None, description="bearer token Prometheus may use for /metrics")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names clients may use in the Host header, besides `host` (and, on loopback, "
        "localhost, 127.0.0.1 and ::1); required when binding to all addresses (0.0.0.0, ::)",
    )
    # The largest legitimate body is a key holder's share file handed in with an approval (base64, up to 2 MB).
    max_body_bytes: int = Field(
        4_000_000, ge=1024, le=1_000_000_000, description="refuse request bodies larger than this (413)"
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        plain = [name.strip("[]").lower() for name in names]
        for name in plain:
            if not re.fullmatch(HOST_PATTERN, name) and not _is_address(name):
                raise ValueError(f"{name[:60]!r}: a host name or address, without scheme, port or path")
        return plain

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @property
    def tls(self) -> bool:
        """Whether the server itself speaks HTTPS."""
        return self.tls_cert is not None

    def is_wildcard(self) -> bool:
        """Whether the bind address is every address of the machine (0.0.0.0, ::)."""
        try:
            return ipaddress.ip_address(self.host).is_unspecified
        except ValueError:
            return False

    def host_names(self) -> frozenset[str]:
        """The names the Host header may carry: the bound host, loopback names on loopback, `allowed_hosts`."""
        names = set(self.allowed_hosts)
        if not self.is_wildcard():
            names.add(self.host.strip("[]").lower())
        if self.is_loopback():
            names |= {"localhost", "127.0.0.1", "::1"}
        return frozenset(names)

    def is_loopback(self) -> bool:
        """Whether the bind address is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class OnvifConfig(_Strict):
    """How to reach a camera's ONVIF PTZ service (steering then turns the real head)."""

    host: str = Field(description="the camera's address (name or IP) for ONVIF")
    port: int = Field(80, ge=1, le=65535, description="the camera's ONVIF (HTTP) port")
    user: str = Field("", description="ONVIF user (WS-Security UsernameToken)")
    password: str = Field("", repr=False, description="ONVIF password; never logged or shown")
    timeout_s: float = Field(5.0, gt=0, le=60, description="give up on connecting, or on one PTZ call, after this")


class CameraConfig(_Strict):
    """One camera: where its pictures come from, what it is for, and who may see it."""

    name: str = Field(pattern=NAME_PATTERN, description="short id used in URLs")
    source: str = Field(description="rtsp(s)://, http(s)://, a video file (looped), /dev/videoN or demo:walkers")
    location: str = Field("", description="where the camera is, for the transparency page")
    purpose: str = Field("", description="why it films, for the transparency page")
    retention_days: float = Field(7.0, gt=0, description="recordings older than this are deleted")
    retention_mb: int = Field(10_000, gt=0, description="the oldest recordings go beyond this size")
    record: bool = Field(True, description="keep veiled recordings")
    steerable: bool = Field(True, description="visitors may steer it (digital pan/tilt/zoom, ONVIF PTZ)")
    viewers: list[Role] = Field(
        default_factory=lambda: list(DEFAULT_VIEWERS),
        description="roles that may watch it (admins always may)",
    )
    onvif: OnvifConfig | None = Field(None, description="real PTZ over ONVIF, if the camera has it")
    engine: EngineSettings = Field(LIVE_ENGINE, description="this camera's engine: `[engine]`, overridden key by key")
    live: LiveSettings = Field(LiveSettings(), description="this camera's live view: `[live]`, overridden key by key")

    @model_validator(mode="before")
    @classmethod
    def _view_keys(cls, data: Any) -> Any:
        """`width`, `height` and `fps` may still be given beside `name` (as before `[cameras.live]`)."""
        if isinstance(data, dict) and any(key in data for key in VIEW_KEYS):
            data = dict(data)
            live = dict(data.get("live") or {})
            for key in VIEW_KEYS:
                if key in data:
                    live.setdefault(key, data.pop(key))
            data["live"] = live
        return data

    @property
    def width(self) -> int:
        """Output width of the veiled view."""
        return self.live.width

    @property
    def height(self) -> int:
        """Output height of the veiled view."""
        return self.live.height

    @property
    def fps(self) -> float:
        """Frames per second of the veiled view."""
        return self.live.fps

    @field_validator("source")
    @classmethod
    def _valid_source(cls, value: str) -> str:
        from veilwatch.sources.urls import validate_source

        validate_source(value)
        return value

    @property
    def display_source(self) -> str:
        """The source with any credentials masked."""
        from veilwatch.sources.urls import scrub

        return scrub(self.source)


class VaultConfig(_Strict):
    """Where the key vault's public file is: with it, recorded faces are also kept, sealed, for K-of-N unmasking."""

    public_file: Path | None = Field(
        None, description="vault.json from `veilwatch vault init`; unset: raw faces are never kept at all"
    )
    request_ttl_hours: float = Field(72.0, gt=0, le=24 * 30, description="an unmask request expires after this")
    clip_ttl_minutes: float = Field(30.0, gt=0, le=24 * 60, description="an unmasked clip can be fetched this long")


class AuditConfig(_Strict):
    """The tamper-evident log of every action: its name in checkpoints, and the witnesses it accepts."""

    name: str = Field(
        "veilwatch.local",
        pattern=r"^[^\s+]{1,200}$",
        description="this installation's name, best a domain you own; the log's origin defaults to '<name>/audit'",
    )
    origin: str | None = Field(
        None,
        pattern=r"^[^\s+]{1,256}$",
        description="the checkpoints' origin line and the log key's name (fixed by the key once it exists)",
    )
    witnesses: list[str] = Field(
        default_factory=list,
        description="verifier keys of witnesses (from `veilwatch witness init`) whose cosignatures are published",
    )
    checkpoint_interval_s: float = Field(
        10.0, ge=0, le=3600, description="sign a new checkpoint at most this often (when the log grew)"
    )
    witness_urls: dict[str, str] = Field(
        default_factory=dict,
        description="witness name -> its C2SP tlog-witness URL prefix (POST …/add-checkpoint), asked to cosign",
    )
    witness_quorum: int = Field(
        0, ge=0, le=100, description="publish a checkpoint (/log/checkpoint) only once this many witnesses cosigned it"
    )

    @field_validator("witnesses")
    @classmethod
    def _witness_keys(cls, keys: list[str]) -> list[str]:
        from veilwatch.audit.note import SIG_COSIGNATURE_V1, NoteError, Verifier

        for key in keys:
            try:
                verifier = Verifier.parse(key)
            except NoteError as exc:
                raise ValueError(f"{key[:60]!r}: {exc}") from exc
            if verifier.sig_type != SIG_COSIGNATURE_V1:
                raise ValueError(f"{key[:60]!r}: not a witness key (type 0x04, from `veilwatch witness init`)")
        return keys

    @model_validator(mode="after")
    def _quorum_reachable(self) -> AuditConfig:
        if self.witness_quorum > len(self.witnesses):
            raise ValueError(f"witness_quorum {self.witness_quorum} needs at least that many witnesses")
        names = {key.split("+", 1)[0] for key in self.witnesses}
        for name, url in self.witness_urls.items():
            if name not in names or not url.startswith(("http://", "https://")):
                raise ValueError(f"witness_urls: {name[:60]!r} must name a configured witness, with an http(s) URL")
        return self

    @property
    def log_origin(self) -> str:
        """The origin the log signs checkpoints for."""
        return self.origin or f"{self.name}/audit"


class ServeConfig(_Strict):
    """Everything `veilwatch serve` needs."""

    server: ServerConfig = Field(ServerConfig(), description="where and how the monitoring room listens")
    engine: EngineSettings = Field(LIVE_ENGINE, description="every camera's engine unless `[cameras.engine]` says")
    live: LiveSettings = Field(LiveSettings(), description="every camera's live view unless `[cameras.live]` says")
    vault: VaultConfig = Field(VaultConfig(), description="the key vault (raw faces kept sealed, K-of-N unmasking)")
    audit: AuditConfig = Field(AuditConfig(), description="the tamper-evident log")
    cameras: list[CameraConfig] = Field(default_factory=list, description="the cameras, one `[[cameras]]` each")

    @model_validator(mode="before")
    @classmethod
    def _camera_defaults(cls, data: Any) -> Any:
        """Each camera's `engine` and `live` tables override the top-level ones key by key."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        engine = merge_tables(LIVE_ENGINE.model_dump(exclude_defaults=True), data.get("engine"))
        live = data.get("live")
        if isinstance(data.get("engine", {}), dict):
            data["engine"] = engine
        cameras = data.get("cameras")
        if isinstance(cameras, list):
            data["cameras"] = [_camera_with_defaults(camera, engine, live) for camera in cameras]
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [camera.name for camera in self.cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique: {', '.join(duplicates)}")
        return self

    def camera(self, name: str) -> CameraConfig | None:
        """The camera called `name`, if any."""
        return next((c for c in self.cameras if c.name == name), None)


def _camera_with_defaults(camera: Any, engine: dict[str, Any], live: Any) -> Any:
    if not isinstance(camera, dict):
        return camera
    camera = dict(camera)
    camera["engine"] = merge_tables(engine, camera.get("engine"))
    if isinstance(live, dict):
        camera["live"] = merge_tables(live, camera.get("live"))
    return camera


def merge_tables(base: dict[str, Any], override: Any) -> Any:
    """`override` laid over `base`, sub-table by sub-table (a non-table override is left for validation to refuse)."""
    if override is None:
        return dict(base)
    if not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        merged[key] = merge_tables(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's data; a missing or unreadable file is one ConfigError line."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", path=str(path)) from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(path)) from exc


def load_config(path: Path) -> ServeConfig:
    """Read and validate a TOML config; any problem is one ConfigError line naming the key."""
    return parse_config(read_toml(path), origin=str(path))


def parse_config(data: dict[str, object], *, origin: str | None = None) -> ServeConfig:
    """Validate config data; errors name the offending key path (e.g. cameras.1.source)."""
    return validated(ServeConfig, data, origin)


def load_anonymize_config(path: Path, overrides: dict[str, Any] | None = None) -> AnonymizeSettings:
    """`anonymize --config`: the file's settings with `overrides` (the command line's flags) laid over them."""
    return validated(AnonymizeSettings, merge_tables(read_toml(path), overrides), str(path))


def validated(model: type[M], data: Any, origin: str | None) -> M:
    """`data` validated as `model`; errors are one ConfigError line naming the offending key path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(f"{where}: {message}", path=origin) from exc
