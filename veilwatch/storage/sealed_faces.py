"""The only place raw face pixels exist at rest: sealed (encrypted) chunks of face regions.

What an unmask needs is stored, not more. The veiled recording already holds every frame with its
faces veiled; an unmask only has to put back the pixels under the requested veils. So each
camera's raw pixels are kept as the *face regions* of each recorded frame (the pixels under each
veil, JPEG-compressed as each frame arrives), gathered in memory into chunks of `chunk_s` seconds
and handed to a `Sealer` — AEAD with a fresh data key, wrapped to that day's public key (see
`veilwatch.vault`) — before a single byte reaches the disk. The background is never stored twice, and a face the
detector missed is in the veiled recording anyway, so nothing is lost by not keeping whole frames.

A chunk's associated data binds camera, time range and file name: a ciphertext moved to another
camera or time, or renamed, no longer opens. A process killed mid-chunk loses that chunk (at most
`chunk_s` seconds), like the segment being written; no plaintext is ever on disk to leak.

Chunk payload (before sealing), version 1: b"VWFC1\\n", a 4-byte big-endian header length, a
canonical JSON header `{"camera", "frames": [{"at_us", "regions": [[x0, y0, w, h, offset, length]]}]}`
and the concatenated JPEG bytes the header points into.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from veilwatch.errors import StorageError
from veilwatch.frames import RawRegion
from veilwatch.storage.db import Database
from veilwatch.storage.models import SealedChunkRow
from veilwatch.storage.paths import confined
from veilwatch.storage.recordings import check_camera

__all__ = [
    "FaceChunk",
    "FaceChunkWriter",
    "SealedChunk",
    "SealedFaceStore",
    "Sealer",
    "associated_data",
    "day_of",
    "decode_payload",
]

log = logging.getLogger(__name__)

MAGIC = b"VWFC1\n"
FACES_DIR = "faces"
JPEG_QUALITY = 92  # the veiled recording is lossy too; an unmask needs a face recognisable, not a master copy

# (day "YYYY-MM-DD", plaintext, associated data) -> ciphertext; raises when that day has no key.
Sealer = Callable[[str, bytes, bytes], bytes]
# (day, ciphertext, associated data) -> plaintext
Opener = Callable[[str, bytes, bytes], bytes]


def day_of(at: float) -> str:
    """The UTC day (key epoch) of a wall-clock time."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def associated_data(camera: str, start_us: int, end_us: int, rel_path: str, day: str) -> bytes:
    """What a chunk's ciphertext is bound to: camera, time range, file name and key epoch."""
    return f"veilwatch/faces/v1\n{camera}\n{start_us}\n{end_us}\n{rel_path}\n{day}\n".encode()


@dataclass(frozen=True)
class FaceFrame:
    """The raw face regions of one recorded frame."""

    at_us: int  # wall-clock capture time, microseconds (the recorder's frame time)
    regions: tuple[RawRegion, ...]


@dataclass(frozen=True)
class FaceChunk:
    """A decoded (opened) chunk: the frames of one camera over a time range."""

    camera: str
    frames: tuple[FaceFrame, ...]


@dataclass(frozen=True)
class SealedChunk:
    """One sealed file as indexed."""

    id: int
    camera: str
    start_at: float
    end_at: float
    day: str
    path: str  # relative to the data folder
    frames: int
    bytes: int


@dataclass(frozen=True)
class _PackedFrame:
    """One frame's face regions, already JPEG-compressed: (x0, y0, width, height, JPEG bytes) each."""

    at_us: int
    regions: tuple[tuple[int, int, int, int, bytes], ...]


def _pack(frame: FaceFrame) -> _PackedFrame:
    """Compress one frame's regions (done as frames arrive, so a chunk's flush is cheap and memory small)."""
    import cv2

    packed = []
    for region in frame.regions:
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(region.pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise StorageError("cannot compress a face region")
        packed.append((region.x0, region.y0, region.width, region.height, jpeg.tobytes()))
    return _PackedFrame(frame.at_us, tuple(packed))


def _assemble(camera: str, frames: Sequence[_PackedFrame]) -> bytes:
    """The chunk plaintext from compressed frames: header, then the JPEG bytes it points into."""
    blobs: list[bytes] = []
    offset = 0
    header_frames = []
    for frame in frames:
        regions = []
        for x0, y0, width, height, data in frame.regions:
            regions.append([x0, y0, width, height, offset, len(data)])
            blobs.append(data)
            offset += len(data)
        header_frames.append({"at_us": frame.at_us, "regions": regions})
    header = json.dumps({"camera": camera, "frames": header_frames}, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(header)) + header + b"".join(blobs)


def decode_payload(payload: bytes) -> FaceChunk:
    """A chunk's frames from its plaintext."""
    import cv2

    if not payload.startswith(MAGIC) or len(payload) < len(MAGIC) + 4:
        raise StorageError("not a veilwatch face chunk (bad magic)")
    (length,) = struct.unpack(">I", payload[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = json.loads(payload[start : start + length])
    body = memoryview(payload)[start + length :]
    frames = []
    for item in header["frames"]:
        regions = []
        for x0, y0, width, height, offset, size in item["regions"]:
            jpeg = np.frombuffer(body[offset : offset + size], np.uint8)
            bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (height, width):
                raise StorageError("a face region in a chunk is damaged")
            regions.append(RawRegion(int(x0), int(y0), np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)))
        frames.append(FaceFrame(int(item["at_us"]), tuple(regions)))
    return FaceChunk(str(header["camera"]), tuple(frames))


class SealedFaceStore:
    """Sealed chunk files under `<data>/faces/`, indexed in SQLite."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self._db = db
        self._root = data_dir.resolve()

    def absolute(self, rel_path: str) -> Path:
        """The file of a chunk, confined to the data folder."""
        return confined(self._root, rel_path)

    def add(
        self, camera: str, start_at: float, end_at: float, day: str, frames: int, sealed_with: Callable[[str], bytes]
    ) -> int:
        """Write one sealed chunk atomically and index it; `sealed_with(rel_path)` makes the ciphertext."""
        check_camera(camera)
        rel = str(PurePosixPath(FACES_DIR, camera, day, f"{int(start_at * 1e6)}-{secrets.token_hex(4)}.sealed"))
        blob = sealed_with(rel)
        path = self.absolute(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        row = SealedChunkRow(
            camera=camera, start_at=start_at, end_at=end_at, day=day, path=rel, bytes=len(blob), frames=frames
        )

        def insert(session: Session) -> int:
            session.add(row)
            session.flush()
            return row.id

        return self._db.write(insert)

    def overlapping(self, camera: str, start_at: float, end_at: float) -> list[SealedChunk]:
        """The chunks of a camera that overlap [start_at, end_at], oldest first."""
        statement = (
            select(SealedChunkRow)
            .where(SealedChunkRow.camera == camera)
            .where(SealedChunkRow.end_at >= start_at)
            .where(SealedChunkRow.start_at <= end_at)
            .order_by(SealedChunkRow.start_at)
        )
        return self._db.read(lambda session: [_chunk(row) for row in session.scalars(statement)])

    def read(self, chunk: SealedChunk) -> bytes:
        """The ciphertext of a chunk."""
        try:
            return self.absolute(chunk.path).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read a sealed chunk: {exc.strerror or exc}", path=chunk.path) from exc

    def open(self, chunk: SealedChunk, opener: Opener) -> FaceChunk:
        """Decrypt and decode one chunk with a day key (from K approvals)."""
        start_us, end_us = round(chunk.start_at * 1e6), round(chunk.end_at * 1e6)
        associated = associated_data(chunk.camera, start_us, end_us, chunk.path, chunk.day)
        return decode_payload(opener(chunk.day, self.read(chunk), associated))

    def delete_older(self, camera: str, cutoff: float) -> int:
        """Delete a camera's chunks that ended before `cutoff` (retention); how many."""
        statement = select(SealedChunkRow).where(SealedChunkRow.camera == camera, SealedChunkRow.end_at < cutoff)
        old = self._db.read(lambda session: [_chunk(row) for row in session.scalars(statement)])
        for chunk in old:
            self.absolute(chunk.path).unlink(missing_ok=True)
        ids = [chunk.id for chunk in old]
        if ids:
            self._db.write(lambda session: session.execute(delete(SealedChunkRow).where(SealedChunkRow.id.in_(ids))))
        return len(ids)

    def count(self) -> int:
        """How many chunks are stored."""
        return self._db.read(lambda session: len(session.scalars(select(SealedChunkRow.id)).all()))


@dataclass
class FaceChunkWriter:
    """Gathers one camera's raw face regions in memory and stores them sealed, chunk by chunk."""

    camera: str
    store: SealedFaceStore
    sealer: Sealer
    chunk_s: float = 10.0
    _frames: list[_PackedFrame] = field(default_factory=list)
    _start_at: float | None = None
    _last_at: float = 0.0
    unsealed_frames: int = 0  # frames dropped because no key could seal them (never written clear)

    def add(self, at: float, regions: Sequence[RawRegion]) -> None:
        """Take one recorded frame's face regions (an empty frame still extends the chunk)."""
        if self._start_at is not None and (at - self._start_at >= self.chunk_s or day_of(at) != day_of(self._start_at)):
            self.flush()
        if self._start_at is None:
            self._start_at = at
        self._last_at = max(self._last_at, at)
        if regions:
            self._frames.append(_pack(FaceFrame(round(at * 1e6), tuple(regions))))

    def flush(self) -> None:
        """Seal and store what has been gathered (nothing when no face was seen)."""
        frames, start_at, end_at = self._frames, self._start_at, self._last_at
        self._frames, self._start_at, self._last_at = [], None, 0.0
        if not frames or start_at is None:
            return
        day = day_of(start_at)
        payload = _assemble(self.camera, frames)
        start_us, end_us = round(start_at * 1e6), round(end_at * 1e6)

        def sealed_with(rel: str) -> bytes:
            return self.sealer(day, payload, associated_data(self.camera, start_us, end_us, rel, day))

        try:
            self.store.add(self.camera, start_us / 1e6, end_us / 1e6, day, len(frames), sealed_with)
        except Exception:
            self.unsealed_frames += len(frames)
            raise


def _chunk(row: SealedChunkRow) -> SealedChunk:
    return SealedChunk(row.id, row.camera, row.start_at, row.end_at, row.day, row.path, row.frames, row.bytes)
