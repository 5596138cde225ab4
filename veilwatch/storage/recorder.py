"""Recording one camera's veiled video into short, crash-safe MP4 segments.

Privacy: a `SegmentRecorder` records exactly the pixels it is handed and nothing else; it never
reads from a camera. The live pipeline must hand it frames that are already veiled, so that no
unveiled face is ever written to disk.

Crash safety: segments are fragmented MP4 (`frag_keyframe+empty_moov+default_base_moof`) with a
keyframe at least every `keyframe_seconds`, and each fragment is handed to the OS as soon as it
is complete. A process killed mid-segment leaves a file that plays up to its last whole fragment,
which `SegmentIndex.heal()` finishes at the next start. x264 runs with `tune=zerolatency` (no
B-frames, no look-ahead), so a frame reaches the file within a fragment of being written rather
than after an encoder queue.

Disk full: a write that fails with ENOSPC evicts the oldest complete segments (any camera) until
`min_free_bytes` are free; if that is enough, the segment being written is kept up to its last
whole fragment; if not, only that segment is deleted. Finished segments and the index are never
touched by the failure itself. Frames that arrive while the disk stays full are dropped (counted
in `dropped`), and a new segment is tried at most once a second.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import SQLAlchemyError

from veilwatch.errors import ConfigError, StorageError
from veilwatch.media.encode import TimedEncoder, TimedStream, check_encoder, fragmented_mp4
from veilwatch.storage.recordings import SegmentIndex, check_camera, segment_path
from veilwatch.storage.retention import free_space

__all__ = ["DEFAULT_MIN_FREE_BYTES", "SegmentRecorder"]

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE_BYTES = 256 * 1024 * 1024
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13  # SQLite's "database or disk is full"
_RETRY_AFTER_FULL_S = 1.0


@dataclass
class _Current:
    """The segment being written."""

    id: int
    path: Path
    encoder: TimedEncoder
    start_at: float
    last_at: float


class SegmentRecorder:
    """Encodes one camera's veiled RGB frames into indexed MP4 segments of `segment_seconds` each.

    It records only what the caller hands to `write()`, which must already be veiled: raw camera
    pixels never reach this class. Not thread-safe: one recorder is fed by one thread.
    """

    def __init__(
        self,
        camera: str,
        data_dir: Path,
        index: SegmentIndex,
        fps: float,
        width: int,
        height: int,
        segment_seconds: float = 10.0,
        codec: str = "libx264",
        preset: str = "veryfast",
        crf: int = 23,
        *,
        keyframe_seconds: float = 1.0,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        check_camera(camera)
        if data_dir.resolve() != index.data_dir:
            raise ConfigError(f"recorder data folder {data_dir} is not the index's {index.data_dir}")
        if fps <= 0 or segment_seconds <= 0 or keyframe_seconds <= 0:
            raise ConfigError("fps, segment_seconds and keyframe_seconds must be positive")
        if width < 2 or height < 2:
            raise ConfigError(f"frame size {width}x{height} is too small to encode")
        if min_free_bytes <= 0:
            raise ConfigError("min_free_bytes must be positive: it is how a full disk is told apart")
        if not check_encoder(codec):
            raise ConfigError(f"unknown video encoder {codec!r}")
        self.camera = camera
        self._data_dir = data_dir
        self._index = index
        self._fps = fps
        self._size = (height, width)
        self._segment_s = segment_seconds
        self._stream = TimedStream(width, height, fps, codec, preset, crf, keyframe_seconds, zero_latency=True)
        self._min_free = min_free_bytes
        self._current: _Current | None = None
        self._retry_at = -math.inf
        self._unsettled: dict[int, bool] = {}  # segment id → keep, for rows a full disk kept us from updating
        self._closed = False
        self.dropped = 0  # frames not recorded because the disk was full

    @property
    def segment_id(self) -> int | None:
        """Id of the segment being written, if any."""
        return self._current.id if self._current else None

    def write(self, pixels: npt.NDArray[np.uint8], at: float) -> None:
        """Record one already-veiled H×W×3 RGB frame shown at wall-clock time `at` (seconds)."""
        if self._closed:
            raise StorageError(f"recorder of camera {self.camera!r} is closed")
        if pixels.shape != (*self._size, 3) or pixels.dtype != np.uint8:
            raise ValueError(f"expected {self._size[0]}×{self._size[1]}×3 uint8 RGB, got {pixels.shape} {pixels.dtype}")
        try:
            self._write(pixels, at)
        except SQLAlchemyError as exc:
            if not _index_full(exc):
                raise StorageError(f"cannot update the recordings index: {exc}") from exc
            # Not even the index can grow: drop the frame and try again in a second.
            self._retry_at = at + _RETRY_AFTER_FULL_S
            self.dropped += 1

    def _write(self, pixels: npt.NDArray[np.uint8], at: float) -> None:
        current = self._current
        if current is not None and (at - current.start_at >= self._segment_s or at < current.last_at):
            # Rotate; a clock that jumped back also starts a new segment, so times never run backwards in one.
            self._finish(current, end_at=max(at, current.last_at))
            current = None
        if current is None:
            current = self._start(at)
            if current is None:
                self.dropped += 1
                return
        try:
            self._encode(current, pixels, at)
        except OSError as exc:
            if _is_disk_full(exc):
                self._on_disk_full(current, at)
                self.dropped += 1
                return
            self._current = None
            self._abandon(current)
            self._settle(current.id, keep=True)
            raise StorageError(f"cannot record camera {self.camera!r}: {exc}", path=str(current.path)) from exc

    def _start(self, at: float) -> _Current | None:
        if at < self._retry_at:
            return None
        self._settle_pending()
        if not self._room_made():
            self._retry_at = at + _RETRY_AFTER_FULL_S
            return None
        rel = self._free_name(at)
        segment_id = self._index.add_writing(self.camera, rel, at)  # row first: no file without a row
        path = self._index.absolute(rel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            encoder = fragmented_mp4(path, self._stream)
        except BaseException as exc:
            self._settle(segment_id, keep=False)
            if not isinstance(exc, Exception):
                raise
            if not _is_disk_full(exc):
                raise StorageError(f"cannot create a recording: {exc}", path=str(path)) from exc
            self._retry_at = at + _RETRY_AFTER_FULL_S
            return None
        self._current = _Current(segment_id, path, encoder, start_at=at, last_at=at)
        return self._current

    def _free_name(self, at: float) -> str:
        for attempt in range(100):
            rel = segment_path(self.camera, at, attempt)
            if not self._index.absolute(rel).exists():
                return rel
        raise StorageError(f"no free segment name for camera {self.camera!r} at {at}")

    def _room_made(self) -> bool:
        free_space(self._index, self._data_dir, self._min_free)
        return shutil.disk_usage(self._data_dir).free >= self._min_free

    def _encode(self, current: _Current, pixels: npt.NDArray[np.uint8], at: float) -> None:
        current.encoder.write(pixels, at)
        current.last_at = at

    def _finish(self, current: _Current, end_at: float) -> None:
        self._current = None
        try:
            current.encoder.close()
            _fsync(current.path)  # the row will say "complete": the bytes must be on disk first
        except OSError as exc:
            if _is_disk_full(exc):
                self._on_disk_full(current, current.last_at)
                return
            self._abandon(current)
            self._settle(current.id, keep=True)
            raise StorageError(f"cannot finish a recording: {exc}", path=str(current.path)) from exc
        try:
            self._index.finish(current.id, end_at, current.path.stat().st_size, current.encoder.frames)
        except SQLAlchemyError as exc:
            if not _index_full(exc):
                raise
            self._unsettled[current.id] = True  # the file is whole: its row is finished from it later

    def _on_disk_full(self, current: _Current, at: float) -> None:
        self._current = None
        self._abandon(current)
        try:
            evicted = len(free_space(self._index, self._data_dir, self._min_free))
        except SQLAlchemyError as exc:
            if not _index_full(exc):
                raise
            evicted = 0
        room = shutil.disk_usage(self._data_dir).free >= self._min_free
        # With room, keep the segment up to its last whole fragment; without, give up only this one.
        kept = self._settle(current.id, keep=room)
        if not room:
            self._retry_at = at + _RETRY_AFTER_FULL_S
        log.warning(
            "camera %s: disk full; evicted %d old segment(s), %s the one being written",
            self.camera,
            evicted,
            "kept" if kept else "deleted",
        )

    def _settle(self, segment_id: int, *, keep: bool) -> bool:
        """Finish (keep) or delete a segment this recorder is done with; whether it was kept.

        If the index itself cannot be written (the database is on the full disk), the segment is
        settled at the next segment start, or by heal() at the next start-up.
        """
        try:
            if keep:
                return self._index.recover(segment_id)
            self._index.delete(segment_id, force=True)
        except SQLAlchemyError as exc:
            if not _index_full(exc):
                raise
            self._unsettled[segment_id] = keep
        return False

    def _settle_pending(self) -> None:
        for segment_id, keep in list(self._unsettled.items()):
            del self._unsettled[segment_id]
            self._settle(segment_id, keep=keep)

    @staticmethod
    def _abandon(current: _Current) -> None:
        current.encoder.abandon()  # the file is repaired (or deleted) by the caller

    def close(self) -> None:
        """Finish the segment being written (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._current is not None:
                self._finish(self._current, end_at=self._current.last_at + 1 / self._fps)
            self._settle_pending()
        except SQLAlchemyError as exc:
            if not _index_full(exc):
                raise StorageError(f"cannot update the recordings index: {exc}") from exc
            log.warning("camera %s: disk full; segments left for heal() at the next start", self.camera)

    def __enter__(self) -> SegmentRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _index_full(exc: SQLAlchemyError) -> bool:
    """Whether SQLite failed because the disk is full."""
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.Error) and getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
