"""Reading a log published as C2SP tlog-tiles, from its URL prefix or a mirrored folder, for verification.

The publisher is not trusted. The checkpoint's signature is checked before anything else is
fetched; the entries (from the entry bundles) and the leaf hashes (from the level-0 tiles) then
go through `verify_log` like an export; `check_upper_tiles` recomputes every hash of the tiles at
level 1 and above from the leaves, so that a log cannot serve other clients tiles that lie.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import TracebackType

import httpx

from veilwatch.audit.merkle import root
from veilwatch.audit.note import Checkpoint, NoteError, Verifier, open_note
from veilwatch.audit.tiles import CHECKPOINT_PATH, TILE_WIDTH, TilePath, decode_bundle, tile_shape
from veilwatch.audit.verify import LogExport, VerifyResult
from veilwatch.errors import AuditError

__all__ = ["TileClient", "check_upper_tiles"]

HASH_SIZE = 32
MAX_NOTE_BYTES = 64 * 1024


class TileClient:
    """Reads one tlog-tiles log from `where`: an http(s) URL prefix or a folder. Use as a context manager."""

    def __init__(self, where: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.where = where
        self._remote = where.startswith(("http://", "https://"))
        self._folder = Path(where)
        self._client = httpx.Client(timeout=timeout_s, transport=transport) if self._remote else None
        if not self._remote and not self._folder.is_dir():
            raise AuditError("not a tile folder or an http(s) URL", path=where)

    def __enter__(self) -> TileClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()

    def get(self, path: str) -> bytes | None:
        """A file of the log, or None if it is not there (404)."""
        if self._client is None:
            try:
                return (self._folder / path).read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise AuditError(f"cannot read: {exc.strerror or exc}", path=str(self._folder / path)) from exc
        url = f"{self.where.rstrip('/')}/{path}"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise AuditError(f"cannot reach {url}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AuditError(f"{url}: HTTP {response.status_code}")
        return response.content

    def tile(self, level: int | None, index: int, width: int) -> bytes:
        """A tile (level None: an entry bundle); a deleted partial tile is cut from its full tile."""
        data = self.get(str(TilePath(level, index, width)))
        if data is None and width < TILE_WIDTH:
            full = self.get(str(TilePath(level, index, TILE_WIDTH)))
            if full is not None and level is not None:
                data = full[: width * HASH_SIZE]
            elif full is not None:
                data = _first_entries(full, width)
        if data is None:
            raise AuditError(f"{self.where}: missing {TilePath(level, index, width)}")
        return data

    def checkpoint(self) -> str:
        """The published checkpoint, with its cosignatures (unverified)."""
        data = self.get(CHECKPOINT_PATH)
        if data is None or len(data) > MAX_NOTE_BYTES:
            raise AuditError(f"{self.where}: no checkpoint, or an implausibly large one")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuditError(f"{self.where}: the checkpoint is not UTF-8 text") from exc

    def export(self, verifier: Verifier) -> LogExport:
        """The checkpoint (its signature checked first), every entry up to its size, and the level-0 tiles."""
        note = self.checkpoint()
        try:
            checkpoint = Checkpoint.parse(open_note(note, [verifier]).text)
        except NoteError as exc:
            raise AuditError(f"{self.where}: the checkpoint is malformed or not signed by the log: {exc}") from exc
        entries: list[bytes] = []
        hashes: list[bytes] = []
        for index in range(0, -(-checkpoint.size // TILE_WIDTH)):
            width = min(TILE_WIDTH, checkpoint.size - index * TILE_WIDTH)
            try:
                bundle = decode_bundle(self.tile(None, index, width))
            except ValueError as exc:
                raise AuditError(f"{self.where}: entry bundle {index} is malformed: {exc}") from exc
            entries.extend(bundle[:width])
            hashes.extend(_hashes(self.tile(0, index, width)))
        return LogExport(checkpoint.origin, note, tuple(entries), tuple(hashes))


def check_upper_tiles(client: TileClient, result: VerifyResult, leaf_hashes: list[bytes]) -> VerifyResult:
    """The result, failed with a problem if a tile of level ≥ 1 differs from the hashes the leaves give."""
    below = leaf_hashes
    for level, full, width in tile_shape(result.size)[1:]:
        above = [root(below[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]) for i in range(len(below) // TILE_WIDTH)]
        for index in range(full + (1 if width else 0)):
            expected = above[index * TILE_WIDTH : index * TILE_WIDTH + (width if index == full else TILE_WIDTH)]
            if _hashes(client.tile(level, index, len(expected))) != expected:
                problem = f"tile {TilePath(level, index, len(expected))} does not match the log's entries"
                return replace(result, ok=False, problems=(*result.problems, problem))
        below = above
    return result


def _hashes(tile: bytes) -> list[bytes]:
    return [tile[i : i + HASH_SIZE] for i in range(0, len(tile) - len(tile) % HASH_SIZE, HASH_SIZE)]


def _first_entries(bundle: bytes, count: int) -> bytes:
    """The first `count` entries of a full bundle, as a bundle (a deleted partial bundle's bytes)."""
    offset = 0
    for _ in range(count):
        if offset + 2 > len(bundle):
            break
        offset += 2 + int.from_bytes(bundle[offset : offset + 2], "big")
    return bundle[:offset]
