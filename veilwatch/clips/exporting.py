"""The export use case: cut a veiled clip, log it, prove the log entry, and keep clip and manifest.

The clip is encoded before anything is logged or locked (an encode of an hour takes a while and
blocks nobody else); the log entry comes next, since the manifest proves that very entry; only
then are the files written where `fetch` finds them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from veilwatch.audit.log import AuditLog
from veilwatch.audit.note import Checkpoint, Note
from veilwatch.clips.export import build_manifest
from veilwatch.clips.recorded import encode_mp4, recorded_frames
from veilwatch.errors import StorageError
from veilwatch.media.atomic import atomic_output
from veilwatch.room.actions import ActionRecorder
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.paths import confined
from veilwatch.storage.recordings import SegmentIndex

__all__ = ["MAX_EXPORT_S", "ExportFile", "ExportService", "Exported"]

MAX_EXPORT_S = 3600.0
EXPORTS = "exports"
_FILE = re.compile(r"([0-9a-f]{16})\.(mp4|manifest\.json)")

ExportKind = Literal["mp4", "manifest.json"]


@dataclass(frozen=True)
class Exported:
    """A finished export: its id, the clip's SHA-256 and frame count, and its log entry's index."""

    id: str
    sha256: str
    frames: int
    log_index: int


@dataclass(frozen=True)
class ExportFile:
    """One file of an export, found on disk, and the camera it was cut from."""

    export_id: str
    kind: ExportKind
    path: Path
    camera: str


class ExportService:
    """Makes exports of veiled recordings and finds their files again."""

    def __init__(self, segments: SegmentIndex, audit: AuditLog, recorder: ActionRecorder, data_dir: Path) -> None:
        self._segments = segments
        self._audit = audit
        self._recorder = recorder
        self._data_dir = data_dir

    def start(self, camera: str, fps: float, start: float, end: float, actor: str, role: str) -> Exported:
        """Export `camera` from start to end (UTC seconds); StorageError when nothing is recorded there."""
        if not 0 < end - start <= MAX_EXPORT_S:
            raise ValueError(f"an export covers more than nothing and at most {MAX_EXPORT_S / 60:.0f} minutes")
        clip, frames = encode_mp4(recorded_frames(self._segments, camera, start, end), fps)
        export_id = secrets.token_hex(8)
        start_us, end_us = round(start * 1e6), round(end * 1e6)
        digest = hashlib.sha256(clip).hexdigest()
        # Logged before it exists for anyone: the manifest proves this very entry.
        index = self._recorder.record(
            ActionKind.EXPORT, actor, role, camera,
            export=export_id, sha256=digest, bytes=len(clip), frames=frames, start_us=start_us, end_us=end_us,
        )  # fmt: skip
        note = self._audit.checkpoint(force=True)
        size = Checkpoint.parse(Note.parse(note).text).size
        manifest = build_manifest(
            f"{camera}-{export_id}.mp4", clip, camera, start_us, end_us, index,
            self._audit.entries(index, index + 1)[0], size, self._audit.inclusion(index, size), note,
        )  # fmt: skip
        folder = self._folder()
        for path, data in ((folder / f"{export_id}.mp4", clip), (folder / f"{export_id}.manifest.json", manifest)):
            with atomic_output(path, overwrite=False) as tmp:
                tmp.write_bytes(data)
        return Exported(export_id, digest, frames, index)

    def find(self, file_name: str) -> ExportFile | None:
        """The export file of that name (`<id>.mp4`, `<id>.manifest.json`), if this server made it."""
        match = _FILE.fullmatch(file_name)
        if match is None:
            return None
        export_id, kind = match.groups()
        try:
            path = confined(self._data_dir, Path(EXPORTS) / file_name)
        except StorageError:
            return None
        camera = self._camera(export_id)
        if not path.is_file() or camera is None:
            return None
        return ExportFile(export_id, "mp4" if kind == "mp4" else "manifest.json", path, camera)

    def fetched(self, found: ExportFile, actor: str, role: str) -> None:
        """Log that someone fetched an export file (before it is served)."""
        self._recorder.record(
            ActionKind.EXPORT_FETCH, actor, role, found.camera, export=found.export_id, file=found.kind
        )

    def _folder(self) -> Path:
        folder = self._data_dir / EXPORTS
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _camera(self, export_id: str) -> str | None:
        """The camera an export was cut from, as its manifest (written by this server) names it."""
        try:
            camera = json.loads((self._folder() / f"{export_id}.manifest.json").read_bytes())["camera"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return camera if isinstance(camera, str) else None
