"""The log as C2SP tlog-tiles: static files that any web server (or `veilwatch serve`) can publish.

    <prefix>/checkpoint                 the latest published checkpoint (a signed note, with cosignatures)
    <prefix>/tile/<L>/<N>[.p/<W>]       tile N of level L: up to 256 concatenated 32-byte hashes
    <prefix>/tile/entries/<N>[.p/<W>]   entry bundle N: big-endian uint16 length-prefixed entries

A tile of level L holds the hashes of the perfect subtrees of 256^L leaves (Merkle level 8·L),
which the log already stores (`veilwatch.audit.log`), so writing tiles never re-hashes anything.
`<N>` is written in groups of three digits, all but the last prefixed with `x` (1234067 is
`x001/x234/067`). Full tiles are immutable and written (fsync'd) once, when the tree completes
them; partial tiles (`.p/<W>`) only for tree sizes a checkpoint was signed for, as the spec asks,
and deleted once their full tile exists. Everything here is derived from the database, so a tile
lost in a crash is written again the next time the log opens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from veilwatch.errors import AuditError

__all__ = [
    "CHECKPOINT_PATH",
    "MAX_BUNDLE_ENTRY",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "TileSource",
    "TileStore",
    "decode_bundle",
    "encode_bundle",
    "entries_path",
    "index_path",
    "parse_path",
    "tile_path",
    "tile_shape",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
CHECKPOINT_PATH = "checkpoint"
MAX_BUNDLE_ENTRY = 0xFFFF  # an entry bundle prefixes each entry with a big-endian uint16 length
MAX_LEVEL = 63
_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def index_path(index: int) -> str:
    """A tile index as path elements: zero-padded groups of three digits, all but the last with an `x`."""
    if index < 0:
        raise ValueError(f"negative tile index {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not between 1 and {TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The path of a hash tile, relative to the log's prefix."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level} is not between 0 and {MAX_LEVEL}")
    return f"tile/{level}/{index_path(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """The path of an entry bundle, relative to the log's prefix."""
    return f"tile/entries/{index_path(index)}{_suffix(width)}"


@dataclass(frozen=True)
class TilePath:
    """A parsed tile path: `level` None for an entry bundle."""

    level: int | None
    index: int
    width: int

    def __str__(self) -> str:
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def parse_path(path: str) -> TilePath | None:
    """The tile a relative path names, or None if it is not a canonical tile path."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    kind, digits, width = match.groups()
    level = None if kind == "entries" else int(kind)
    if level is not None and level > MAX_LEVEL:
        return None
    parsed = TilePath(level, int(digits.replace("x", "").replace("/", "")), TILE_WIDTH if width is None else int(width))
    if parsed.width > TILE_WIDTH - 1 and width is not None:
        return None
    return parsed if str(parsed) == path else None  # one spelling only (no "x000/" padding)


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry prefixed with its length as a big-endian uint16."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_BUNDLE_ENTRY:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError if it is truncated."""
    entries, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("an entry bundle ends inside a length prefix")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise ValueError("an entry bundle ends inside an entry")
        entries.append(data[offset : offset + length])
        offset += length
    return entries


def tile_shape(size: int) -> list[tuple[int, int, int]]:
    """For a tree of `size` leaves: (level, full tiles, partial width) of every level that has hashes."""
    shape, level = [], 0
    while size >> (TILE_HEIGHT * level):
        hashes = size >> (TILE_HEIGHT * level)
        shape.append((level, hashes // TILE_WIDTH, hashes % TILE_WIDTH))
        level += 1
    return shape


class TileSource(Protocol):
    """Where the stored tree is read from (the log's database)."""

    def hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """The hashes of tile level `level` with indexes [start, end) (Merkle level 8·level)."""
        ...

    def entries(self, start: int, end: int) -> list[bytes]:
        """The entries [start, end)."""
        ...


class TileStore:
    """The tile folder of one log. Thread-safe; every write is whole (a temporary file, renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._full: dict[int | None, int] = {}  # per level (None: bundles), how many full tiles exist

    def extend(self, size: int, source: TileSource) -> None:
        """Write every full tile and bundle that a tree of `size` completes and that is not written yet."""
        shape = tile_shape(size)
        if self._full.get(None) == size // TILE_WIDTH and all(self._full.get(lv) == full for lv, full, _ in shape):
            return  # the common case: this append completed no tile
        with self._lock:
            for level, full, _ in shape:
                self._fill(level, full, source)
            self._fill(None, size // TILE_WIDTH, source)

    def publish(self, size: int, source: TileSource) -> None:
        """Write the tiles a checkpoint of `size` needs, partial ones included (before the checkpoint is served)."""
        if size == 0:
            return
        self.extend(size, source)
        with self._lock:
            for level, full, width in tile_shape(size):
                if width:
                    self._partial(level, full, width, source)
            full, width = divmod(size, TILE_WIDTH)
            if width:
                self._partial(None, full, width, source)

    def write_checkpoint(self, note: str) -> None:
        """Replace the served checkpoint."""
        with self._lock:
            _write(self.root / CHECKPOINT_PATH, note.encode(), durable=True)

    def read(self, path: str) -> bytes | None:
        """The bytes of a checkpoint or tile path, or None if there is no such file."""
        if path != CHECKPOINT_PATH and parse_path(path) is None:
            return None
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise AuditError(f"cannot read a tile: {exc.strerror or exc}", path=str(self.root / path)) from exc

    def _fill(self, level: int | None, full: int, source: TileSource) -> None:
        """Write the missing full tiles [known, full) of one level; at first, find how many exist."""
        known = self._full.get(level)
        if known is None:
            known = full
            while known > 0 and not (self.root / _full_path(level, known - 1)).exists():
                known -= 1
        for index in range(known, full):
            start, end = index * TILE_WIDTH, (index + 1) * TILE_WIDTH
            if level is None:
                data = encode_bundle(source.entries(start, end))
            else:
                data = b"".join(source.hashes(level, start, end))
                if len(data) != TILE_WIDTH * HASH_SIZE:
                    raise AuditError(f"the stored tree lacks hashes of tile {index} at level {level}")
            _write(self.root / _full_path(level, index), data, durable=True)
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root / f"{_full_path(level, index)}.p")
        self._full[level] = max(full, known)

    def _partial(self, level: int | None, index: int, width: int, source: TileSource) -> None:
        """Write a partial tile or bundle unless it exists (its bytes never change)."""
        target = self.root / str(TilePath(level, index, width))
        if target.exists():
            return
        start = index * TILE_WIDTH
        if level is None:
            data = encode_bundle(source.entries(start, start + width))
        else:
            data = b"".join(source.hashes(level, start, start + width))
        _write(target, data, durable=False)


def _full_path(level: int | None, index: int) -> str:
    return str(TilePath(level, index, TILE_WIDTH))


def _write(path: Path, data: bytes, *, durable: bool) -> None:
    """Write a file whole: a temporary file in the same folder, renamed over `path` (fsync'd if `durable`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tile-", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise AuditError(f"cannot write a tile: {exc.strerror or exc}", path=str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.chmod(name, 0o644)  # public data, served as is
        os.replace(name, path)
    except OSError as exc:
        raise AuditError(f"cannot write a tile: {exc.strerror or exc}", path=str(path)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
