"""The index of recorded segments, and its repair after a crash.

Files live under `<data_dir>/recordings/<camera>/<UTC date>/<HH-MM-SS.ffffff>.mp4`; each has one
row in `segments` holding its path relative to the data folder. That folder is owned by the
index: `heal()` indexes or removes whatever it finds there without a row.

The order of steps keeps the index consistent whenever the process dies (kill -9 included):

- a segment's row is added ('writing') before its file is created, so every file the recorder
  makes is known;
- deleting removes the file before the row, so a crash in between leaves a row without a file,
  which `heal()` drops. The other order would leave a file without a row, which `heal()` would
  index again: deleted footage would come back.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from veilwatch.errors import ConfigError, StorageError
from veilwatch.storage import _mp4
from veilwatch.storage.db import Database
from veilwatch.storage.models import SegmentRow
from veilwatch.storage.paths import confined

__all__ = ["RECORDINGS_DIR", "HealReport", "Segment", "SegmentIndex", "SegmentStatus", "check_camera", "segment_path"]

log = logging.getLogger(__name__)

RECORDINGS_DIR = "recordings"
SegmentStatus = Literal["writing", "complete"]
_CAMERA = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FILE_NAME = re.compile(r"(\d{2})-(\d{2})-(\d{2})\.(\d{6})(?:-\d+)?\.mp4")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def check_camera(camera: str) -> None:
    """Raise ConfigError unless `camera` can name a folder: 1-64 of A-Z a-z 0-9 _ . - (not . or ..)."""
    if not _CAMERA.fullmatch(camera) or camera in {".", ".."}:
        raise ConfigError(f"invalid camera name {camera[:80]!r}: use 1 to 64 of A-Z a-z 0-9 _ . -")


def segment_path(camera: str, start_at: float, attempt: int = 0) -> str:
    """The relative path of a segment starting at `start_at` (attempt > 0 adds a suffix against clashes)."""
    check_camera(camera)
    when = datetime.fromtimestamp(start_at, UTC)
    suffix = f"-{attempt}" if attempt else ""
    return f"{RECORDINGS_DIR}/{camera}/{when:%Y-%m-%d}/{when:%H-%M-%S.%f}{suffix}.mp4"


def _parse_path(rel: PurePosixPath) -> tuple[str, float] | None:
    """(camera, start_at) of a path laid out as segment_path() makes them, else None."""
    parts = rel.parts
    if len(parts) != 4 or parts[0] != RECORDINGS_DIR or not _DATE.fullmatch(parts[2]):
        return None
    match = _FILE_NAME.fullmatch(parts[3])
    if not match or not _CAMERA.fullmatch(parts[1]) or parts[1] in {".", ".."}:
        return None
    hours, minutes, seconds, micros = match.groups()
    try:
        day = datetime.strptime(parts[2], "%Y-%m-%d").replace(tzinfo=UTC)
        when = day.replace(hour=int(hours), minute=int(minutes), second=int(seconds), microsecond=int(micros))
    except ValueError:
        return None
    return parts[1], when.timestamp()


@dataclass(frozen=True)
class Segment:
    """One recorded file of one camera."""

    id: int
    camera: str
    path: str  # relative to the data folder, with forward slashes
    start_at: float
    end_at: float | None  # None while writing
    bytes: int
    frames: int
    status: SegmentStatus


def _segment(row: SegmentRow) -> Segment:
    status: SegmentStatus = "complete" if row.status == "complete" else "writing"
    return Segment(row.id, row.camera, row.path, row.start_at, row.end_at, row.bytes, row.frames, status)


@dataclass(frozen=True)
class HealReport:
    """What heal() repaired."""

    finished: tuple[int, ...] = ()  # 'writing' rows completed from what their files hold
    dropped: tuple[int, ...] = ()  # rows removed: nothing decodable, or the file was gone
    indexed: tuple[int, ...] = ()  # files that had no row and now have one
    removed_files: tuple[str, ...] = ()  # files that had no row and could not be decoded

    @property
    def changed(self) -> bool:
        """Whether anything needed repair."""
        return bool(self.finished or self.dropped or self.indexed or self.removed_files)


class SegmentIndex:
    """Rows of `segments`, kept in step with the files under `<data_dir>/recordings`."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self._db = db
        try:
            (data_dir / RECORDINGS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the recordings folder: {exc.strerror or exc}", path=str(data_dir)
            ) from exc
        self.data_dir = data_dir.resolve()

    def absolute(self, rel_path: str) -> Path:
        """The file of a relative segment path; raise StorageError if it would leave the data folder."""
        return confined(self.data_dir, rel_path)

    # -- rows -----------------------------------------------------------------------------------

    def add_writing(self, camera: str, rel_path: str, start_at: float) -> int:
        """Add the row of a segment about to be written; its id."""
        check_camera(camera)
        self.absolute(rel_path)
        row = SegmentRow(
            camera=camera, path=rel_path, start_at=start_at, end_at=None, bytes=0, frames=0, status="writing"
        )
        return self._db.write(functools.partial(_inserted, row=row))

    def finish(self, segment_id: int, end_at: float, bytes: int, frames: int) -> None:
        """Mark a segment complete with its end time, size and frame count."""

        def update(session: Session) -> None:
            row = session.get(SegmentRow, segment_id)
            if row is None:
                raise StorageError(f"segment {segment_id} is not in the index")
            row.end_at, row.bytes, row.frames, row.status = end_at, bytes, frames, "complete"

        self._db.write(update)

    def get(self, segment_id: int) -> Segment | None:
        """The segment with this id, if any."""
        return self._db.read(lambda s: _maybe(s.get(SegmentRow, segment_id)))

    def list(self, camera: str, start_at: float, end_at: float) -> builtins.list[Segment]:
        """Segments of `camera` overlapping [start_at, end_at), oldest first (those being written too)."""
        statement = (
            select(SegmentRow)
            .where(SegmentRow.camera == camera, SegmentRow.start_at < end_at)
            .where((SegmentRow.end_at.is_(None)) | (SegmentRow.end_at > start_at))
            .order_by(SegmentRow.start_at, SegmentRow.id)
        )
        return self._db.read(lambda s: [_segment(row) for row in s.scalars(statement)])

    def oldest_complete(
        self, camera: str | None = None, *, limit: int = 100, ended_before: float | None = None
    ) -> builtins.list[Segment]:
        """Up to `limit` complete segments, oldest first, of one camera or of all."""
        statement = select(SegmentRow).where(SegmentRow.status == "complete")
        if camera is not None:
            statement = statement.where(SegmentRow.camera == camera)
        if ended_before is not None:
            statement = statement.where(SegmentRow.end_at <= ended_before)
        statement = statement.order_by(SegmentRow.start_at, SegmentRow.id).limit(limit)
        return self._db.read(lambda s: [_segment(row) for row in s.scalars(statement)])

    def usage(self, camera: str | None = None) -> int:
        """Bytes recorded, by one camera or by all (a segment being written counts once finished)."""
        statement = select(func.coalesce(func.sum(SegmentRow.bytes), 0))
        if camera is not None:
            statement = statement.where(SegmentRow.camera == camera)
        return int(self._db.read(lambda s: s.scalar(statement)) or 0)

    def delete(self, segment_id: int, *, force: bool = False) -> int:
        """Remove a segment's file, then its row; the bytes freed. Refuses one being written unless `force`."""
        segment = self.get(segment_id)
        if segment is None:
            return 0
        if segment.status == "writing" and not force:
            raise StorageError(f"segment {segment_id} is being written")
        freed = self._unlink(self.absolute(segment.path))
        self._db.write(lambda s: _delete_row(s, segment_id))
        return freed

    def _unlink(self, path: Path) -> int:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    # -- repair ---------------------------------------------------------------------------------

    def recover(self, segment_id: int) -> bool:
        """Finish a segment from what its file holds (a torn last fragment is cut off), else delete it.

        True if the segment is now complete. For segments whose writer is gone: heal() at
        start-up, or the recorder after a failed write.
        """
        segment = self.get(segment_id)
        if segment is None:
            return False
        path = self.absolute(segment.path)
        found = _salvage(path)
        if found is None:
            self.delete(segment_id, force=True)
            return False
        self.finish(segment_id, segment.start_at + found.duration_s, found.bytes, found.frames)
        return True

    def heal(self) -> HealReport:
        """Make rows and files agree after a crash. Run at start-up, before any recorder starts."""
        finished: builtins.list[int] = []
        dropped: builtins.list[int] = []
        for segment in self._all(status="writing"):
            (finished if self.recover(segment.id) else dropped).append(segment.id)
        for segment in self._all(status="complete"):
            if not self.absolute(segment.path).is_file():
                self._db.write(functools.partial(_delete_row, segment_id=segment.id))
                dropped.append(segment.id)
        indexed, removed = self._adopt_orphans()
        self._prune_empty_dirs()
        report = HealReport(tuple(finished), tuple(dropped), tuple(indexed), tuple(removed))
        if report.changed:
            log.warning("recordings repaired after an unclean stop: %s", report)
        return report

    def _all(self, status: SegmentStatus) -> builtins.list[Segment]:
        statement = select(SegmentRow).where(SegmentRow.status == status).order_by(SegmentRow.id)
        return self._db.read(lambda s: [_segment(row) for row in s.scalars(statement)])

    def _adopt_orphans(self) -> tuple[builtins.list[int], builtins.list[str]]:
        known = set(self._db.read(lambda s: builtins.list(s.scalars(select(SegmentRow.path)))))
        indexed: builtins.list[int] = []
        removed: builtins.list[str] = []
        for path in _files_under(self.data_dir / RECORDINGS_DIR):
            rel = PurePosixPath(path.relative_to(self.data_dir).as_posix())
            if str(rel) in known:
                continue
            parsed = _parse_path(rel)
            found = _salvage(path) if parsed is not None and not path.is_symlink() else None
            if parsed is None or found is None:
                path.unlink(missing_ok=True)
                removed.append(str(rel))
                continue
            camera, start_at = parsed
            row = SegmentRow(
                camera=camera,
                path=str(rel),
                start_at=start_at,
                end_at=start_at + found.duration_s,
                bytes=found.bytes,
                frames=found.frames,
                status="complete",
            )
            indexed.append(self._db.write(functools.partial(_inserted, row=row)))
        return indexed, removed

    def _prune_empty_dirs(self) -> None:
        root = self.data_dir / RECORDINGS_DIR
        for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
            if Path(folder) != root:
                with contextlib.suppress(OSError):  # not empty: fine
                    os.rmdir(folder)


def _files_under(root: Path) -> builtins.list[Path]:
    # os.walk does not follow symbolic links to folders, so nothing outside the data folder is touched.
    files: builtins.list[Path] = []
    for folder, _, names in os.walk(root):
        files.extend(Path(folder) / name for name in names)
    return sorted(files)


def _salvage(path: Path) -> _mp4.Probe | None:
    try:
        _mp4.trim_to_whole_fragments(path)
    except OSError:
        return None
    return _mp4.probe(path)


def _inserted(session: Session, row: SegmentRow) -> int:
    session.add(row)
    session.flush()
    return row.id


def _delete_row(session: Session, segment_id: int) -> None:
    row = session.get(SegmentRow, segment_id)
    if row is not None:
        session.delete(row)


def _maybe(row: SegmentRow | None) -> Segment | None:
    return _segment(row) if row is not None else None
