"""Which camera sources veilwatch opens, and how their credentials are kept out of sight.

FFmpeg opens far more than cameras: `exec:` and `pipe:` run or talk to programs, `file:`,
`subfile:`, `concat:` and `data:` read arbitrary local data, and a remote HLS playlist may name
segments on any of those. A source is therefore accepted only in one of five shapes, and each
shape carries the FFmpeg options that confine it:

- `rtsp://`, `rtsps://` — protocols limited to rtp, rtsp, udp, tcp, tls; the rtsp demuxer only;
- `http://`, `https://` (MJPEG, HLS, MPEG-TS, progressive MP4…) — protocols limited to http,
  https, tcp, tls, and demuxers to stream formats, so a playlist cannot pull in `file:` or `exec:`;
- an existing local video file (looped) — opened by absolute path, protocol `file` only, and
  self-contained containers only (no playlists, concat scripts or image sequences);
- a local capture device `/dev/videoN` — PyAV format `v4l2`;
- `demo:walkers[?seed=N&people=M]` — synthetic faces, no FFmpeg at all.

Camera URLs carry passwords. `scrub` masks them; every URL or FFmpeg message that is logged or
shown goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from veilwatch.errors import ConfigError

SourceKind = Literal["rtsp", "http", "file", "device", "demo"]

MAX_SOURCE_CHARS = 2048
DEMO_SCENES = ("walkers",)
DEMO_LIMITS = {"seed": (0, 2**31 - 1), "people": (1, 12), "width": (64, 3840), "height": (64, 2160), "fps": (1, 60)}
DEMO_DEFAULTS = {"seed": 0, "people": 6, "width": 1280, "height": 720, "fps": 10}

RTSP_PROTOCOLS = "rtp,rtsp,udp,tcp,tls"
HTTP_PROTOCOLS = "http,https,tcp,tls"
# Demuxers a network stream may use (HLS segments are opened by sub-demuxers that inherit this list).
HTTP_FORMATS = "hls,mpegts,mov,mp4,aac,mp3,ac3,eac3,webvtt,mpjpeg,mjpeg,jpeg_pipe,flv,matroska,webm,h264,hevc"
# Demuxers a local file may use: self-contained containers only, nothing that names other files.
FILE_FORMATS = "mov,mp4,matroska,webm,avi,mpegts,flv,mpjpeg,mjpeg,h264,hevc,mpeg,mpegvideo,ogg,asf,m4v"

# FFmpeg pseudo-protocols named in the error so that the refusal is understood, not retried.
PSEUDO_PROTOCOLS = frozenset(
    "exec pipe subfile concat concatf data file fd tcp udp unix crypto async cache tee hls md5 gopher gophers "  # noqa: SIM905
    "ftp sftp smb rtmp rtmps rtmpt rtmpe rtmpte rtmpts rtp srtp sctp srt tls udplite zmq ipfs ipns bluray "
    "httpproxy icecast mmsh mmst prompeg librist".split()
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)(:|,)")
_DEVICE = re.compile(r"^/dev/video[0-9]{1,3}$")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][^=&#\s]*(?:pas|pw|token|key|secret|auth|sig|cred|session|user|usr|login)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SourceSpec:
    """A validated source: what to open, how, and with which FFmpeg options (or demo parameters)."""

    kind: SourceKind
    url: str  # for av.open: the URL, an absolute file path, a device path, or "demo:NAME"
    options: Mapping[str, str] = field(default_factory=dict, hash=False)
    format: str | None = None  # a forced PyAV input format (v4l2 for devices)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __repr__(self) -> str:
        # The default repr would print the URL's password wherever a spec is logged.
        return f"SourceSpec(kind={self.kind!r}, url={self.display!r}, format={self.format!r})"

    @property
    def display(self) -> str:
        """The source as logs and pages may show it (credentials masked)."""
        return scrub(self.url)

    @property
    def live(self) -> bool:
        """Whether the source is a live stream (reconnected), not a file (looped)."""
        return self.kind in ("rtsp", "http", "device")

    def av_options(self) -> dict[str, str]:
        """A fresh copy of the FFmpeg options, as av.open wants them."""
        return dict(self.options)


def scrub(text: str) -> str:
    """The text with URL credentials (user:password@) and secret query parameters masked."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAM.sub(r"\g<name>***", text)


def validate_source(text: str, *, base_dir: Path | None = None) -> SourceSpec:
    """Parse and check a camera source; raise ConfigError (credentials scrubbed) if it is not allowed."""
    source = text.strip()
    if not source:
        raise ConfigError("camera source is empty")
    if len(source) > MAX_SOURCE_CHARS:
        raise ConfigError(f"camera source is longer than {MAX_SOURCE_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in source):
        raise ConfigError(f"camera source contains control characters: {scrub(source)!r}")
    match = _SCHEME.match(source)
    if match is None or len(match.group(1)) == 1:  # one letter: a Windows drive, i.e. a path
        return _local(source, base_dir)
    scheme = match.group(1).lower()
    if scheme in ("rtsp", "rtsps", "http", "https"):
        return _network(source, scheme)
    if scheme == "demo":
        return _demo(source)
    if scheme in PSEUDO_PROTOCOLS:
        raise ConfigError(
            f"camera source {scrub(source)!r} uses the FFmpeg protocol '{scheme}:', which can run programs "
            "or read local files; use rtsp://, http(s)://, a plain file path, /dev/videoN or demo:walkers"
        )
    raise ConfigError(
        f"camera source {scrub(source)!r} has the unsupported scheme '{scheme}:'; "
        "use rtsp://, rtsps://, http://, https://, a video file path, /dev/videoN or demo:walkers"
    )


def _network(source: str, scheme: str) -> SourceSpec:
    if any(c.isspace() for c in source):
        raise ConfigError(f"camera URL {scrub(source)!r} contains spaces (percent-encode them)")
    try:
        parts = urlsplit(source)
        host, _port = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"camera URL {scrub(source)!r} is malformed ({scrub(str(exc))})") from exc
    if not host:
        raise ConfigError(f"camera URL {scrub(source)!r} names no host")
    if scheme.startswith("rtsp"):
        options = {"protocol_whitelist": RTSP_PROTOCOLS, "format_whitelist": "rtsp", "rtsp_transport": "tcp"}
        return SourceSpec("rtsp", source, options)
    return SourceSpec("http", source, {"protocol_whitelist": HTTP_PROTOCOLS, "format_whitelist": HTTP_FORMATS})


def _local(source: str, base_dir: Path | None) -> SourceSpec:
    if _DEVICE.match(source):
        # A device may be plugged in later; the source keeps retrying, so existence is not required.
        return SourceSpec("device", source, {}, format="v4l2")
    if source.startswith("/dev/"):
        raise ConfigError(f"camera source {scrub(source)!r}: only capture devices /dev/videoN are allowed")
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    # An absolute path starts with "/", which FFmpeg can never read as a protocol prefix.
    path = path.resolve()
    if not path.exists():
        raise ConfigError(f"camera source {scrub(source)!r} is not a URL we accept nor an existing file")
    if not path.is_file():
        raise ConfigError(f"camera source {scrub(source)!r} is not a regular file")
    options = {"protocol_whitelist": "file", "format_whitelist": FILE_FORMATS}
    return SourceSpec("file", str(path), options)


def _demo(source: str) -> SourceSpec:
    name, _, query = source[len("demo:") :].partition("?")
    if name not in DEMO_SCENES:
        raise ConfigError(f"unknown demo source {source!r}; try demo:walkers or demo:walkers?seed=1&people=4")
    params = dict(DEMO_DEFAULTS)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"demo source {source!r}: malformed parameters ({exc})") from exc
    for key, value in pairs:
        if key not in DEMO_LIMITS:
            raise ConfigError(f"demo source {source!r}: unknown parameter {key!r} (known: {', '.join(DEMO_LIMITS)})")
        low, high = DEMO_LIMITS[key]
        if not value.isdigit() or not low <= int(value) <= high:
            raise ConfigError(f"demo source {source!r}: {key} must be an integer in {low}..{high}")
        params[key] = int(value)
    return SourceSpec("demo", f"demo:{name}", {key: str(value) for key, value in params.items()})
