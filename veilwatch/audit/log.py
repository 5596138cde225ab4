"""The audit log: an append-only RFC 6962 Merkle tree of events in SQLite, with signed checkpoints.

Each append stores the entry, its leaf hash and the hash of every perfect subtree the new leaf
completes (two rows per entry on average) in one IMMEDIATE transaction on the database's one
writer thread; it is committed (synchronous=FULL) before `append` returns. Roots and proofs are
then folded from O(log n) stored subtree hashes in one snapshot: nothing ever re-hashes the log,
at 10^6 entries either. The leaf hashes live apart from the entries, so an edited entry is
pinned to its index by `veilwatch.audit.verify`.

Checkpoints are C2SP signed notes, signed with the log's Ed25519 key (kept in `key_dir`, mode
0600). Before signing, the log checks with its own consistency proof that the stored tree still
extends the last checkpoint it signed, so it never signs two inconsistent trees; every checkpoint
is stored. A witness cosignature is stored only if it verifies under a configured witness key
and cosigns a checkpoint this log signed.

Any failure to append, sign or read raises `AuditError`, so that the caller can refuse the action
it was recording. Bad sizes or indexes raise `merkle.PreconditionError` (a `ValueError`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from veilwatch.audit.files import read_private, write_private
from veilwatch.audit.merkle import (
    EMPTY_ROOT,
    NodeId,
    PreconditionError,
    ProofError,
    completed_nodes,
    consistency_ranges,
    hash_from_nodes,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_nodes,
    verify_consistency,
)
from veilwatch.audit.note import (
    Checkpoint,
    Note,
    NoteError,
    SignedCheckpoint,
    Signer,
    Verifier,
    open_checkpoint,
    sign_note,
)
from veilwatch.audit.tiles import MAX_BUNDLE_ENTRY, TILE_HEIGHT, TileStore
from veilwatch.audit.verify import LogExport
from veilwatch.errors import AuditError, LogVerificationError
from veilwatch.storage.db import Database
from veilwatch.storage.models import AuditCheckpointRow, AuditCosignatureRow, AuditLeafRow, AuditNodeRow

__all__ = ["DEFAULT_CHECKPOINT_INTERVAL_S", "KEY_FILE", "MAX_ENTRY_BYTES", "AuditLog", "load_signer", "stored_origin"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

KEY_FILE = "audit-log.key"
DEFAULT_CHECKPOINT_INTERVAL_S = 10.0
MAX_ENTRY_BYTES = MAX_BUNDLE_ENTRY  # canonical event records, never media; a tile bundle's uint16 length
_NODE_BATCH = 500  # indexes per query, well under SQLite's variable limit


class AuditLog:
    """The tamper-evident log of one installation. Thread-safe: all writes go through the database's writer."""

    def __init__(
        self,
        db: Database,
        signer: Signer,
        *,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        tiles: TileStore | None = None,
        witness_quorum: int = 0,
    ) -> None:
        self._db = db
        self._signer = signer
        self._interval = checkpoint_interval_s
        self._clock = clock
        self.tiles = tiles
        self.witness_quorum = witness_quorum  # cosignatures a checkpoint needs before it is published
        self._published: str | None = None  # the checkpoint file's text, as last written

    @classmethod
    def open(
        cls,
        db: Database,
        key_dir: Path,
        origin: str,
        *,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        tiles_dir: Path | None = None,
        witness_quorum: int = 0,
    ) -> AuditLog:
        """The log in `db`, signing with the key in `key_dir` (made on first use) for `origin`; tiles in `tiles_dir`."""
        return cls.over(
            db,
            load_signer(key_dir, origin),
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock,
            tiles_dir=tiles_dir,
            witness_quorum=witness_quorum,
        )

    @classmethod
    def over(
        cls,
        db: Database,
        signer: Signer,
        *,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        tiles_dir: Path | None = None,
        witness_quorum: int = 0,
    ) -> AuditLog:
        """The log in `db` signing with a key already loaded; its tiles (if any) brought up to date and published."""
        log = cls(
            db,
            signer,
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock,
            tiles=TileStore(tiles_dir) if tiles_dir is not None else None,
            witness_quorum=witness_quorum,
        )
        if log.tiles is not None:
            log.tiles.extend(log.size(), _StoredTiles(log))  # tiles lost in a crash are written again
            log.publish()
        return log

    @property
    def origin(self) -> str:
        """The checkpoints' origin line, which is also the signing key's name."""
        return self._signer.name

    @property
    def verifier(self) -> Verifier:
        """The log's public key."""
        return self._signer.verifier

    @property
    def verifier_key(self) -> str:
        """The log's public key as a verifier key string: what users and witnesses pin."""
        return self._signer.verifier.vkey

    # -- appending ------------------------------------------------------------------------------

    def append(self, data: bytes) -> int:
        """Append one entry, durably; its index. Raises AuditError if it could not be stored."""
        return self.append_many([data]).start

    def append_many(self, entries: Sequence[bytes]) -> range:
        """Append entries in one transaction (all or none); their indexes."""
        for data in entries:
            if not isinstance(data, bytes) or len(data) > MAX_ENTRY_BYTES:
                raise AuditError(f"a log entry is bytes of at most {MAX_ENTRY_BYTES}")
        if not entries:
            return range(0)
        now = self._clock()
        start = self._write(lambda session: _append(session, entries, now), "append to")
        if self.tiles is not None:
            try:
                self.tiles.extend(start + len(entries), _StoredTiles(self))
            except AuditError as exc:  # the entry is stored; the tile is written again before the next checkpoint
                _log.warning("cannot write a tile yet: %s", exc.one_line())
        return range(start, start + len(entries))

    # -- reading and proving --------------------------------------------------------------------

    def size(self) -> int:
        """How many entries the log holds."""
        return self._read(_size)

    def entries(self, start: int, end: int) -> list[bytes]:
        """The stored entries [start, end)."""

        def read(session: Session) -> list[bytes]:
            _check_range(start, end, _size(session))
            return _leaves(session, start, end)

        return self._read(read)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes [start, end) as stored when each entry was appended."""

        def read(session: Session) -> list[bytes]:
            _check_range(start, end, _size(session))
            return _leaf_hashes(session, start, end)

        return self._read(read)

    def leaf_hash_at(self, index: int) -> bytes:
        """The stored leaf hash of entry `index`."""

        def read(session: Session) -> bytes:
            _check_range(index, index + 1, _size(session))
            return _nodes(session, [(0, index)])[(0, index)]

        return self._read(read)

    def root_at(self, size: int) -> bytes:
        """The root of the tree of the first `size` entries."""
        return self._read(lambda session: _root(session, size))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry `index` in the tree of `size` entries."""
        return self._read(lambda session: _proof(session, inclusion_ranges(index, size), size))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        """The consistency proof from the tree of `size1` entries to that of `size2`."""
        return self._read(lambda session: _proof(session, consistency_ranges(size1, size2), size2))

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint(self, *, force: bool = False) -> str:
        """The latest signed checkpoint; a new one is signed if the tree grew and the interval passed (or `force`)."""
        latest = self._read(_latest_row)
        if latest is not None and not self._due(latest, force):
            return latest[2]
        note = self._write(lambda session: self._sign(session, force), "sign a checkpoint of")
        if self.tiles is not None:
            self.publish()
        return note

    def _due(self, latest: tuple[int, int, str, float], force: bool) -> bool:
        if self.size() == latest[1]:
            return False
        return force or self._clock() - latest[3] >= self._interval

    def _sign(self, session: Session, force: bool) -> str:
        latest = _latest_row(session)  # again, inside the write: another thread may have signed
        size = _size(session)
        if latest is not None and (size == latest[1] or (not force and self._clock() - latest[3] < self._interval)):
            return latest[2]
        root = _root(session, size)
        if latest is not None:
            self._check_extends(session, self._open_own(latest[2]), size, root)
        note = sign_note(Checkpoint(self.origin, size, root).text, self._signer)
        session.add(AuditCheckpointRow(size=size, signed_at=self._clock(), note=note))
        return note

    def _check_extends(self, session: Session, previous: SignedCheckpoint, size: int, root: bytes) -> None:
        """The log never signs a tree that does not extend the last one it signed."""
        old = previous.checkpoint
        if size < old.size:
            raise AuditError(f"refusing to sign: the log shrank from {old.size} to {size} entries")
        proof = _proof(session, consistency_ranges(old.size, size), size)
        try:
            verify_consistency(old.size, size, proof, old.root, root)
        except ProofError as exc:
            raise AuditError(
                f"refusing to sign: the stored tree no longer extends checkpoint {old.size}: {exc}"
            ) from exc

    def _open_own(self, note: str) -> SignedCheckpoint:
        try:
            return open_checkpoint(note, self.verifier)
        except NoteError as exc:
            raise AuditError(f"a stored checkpoint does not verify under the log's key (edited?): {exc}") from exc

    def checkpoints(self) -> list[str]:
        """Every checkpoint the log signed, oldest first."""
        statement = select(AuditCheckpointRow.note).order_by(AuditCheckpointRow.id)
        return self._read(lambda session: list(session.scalars(statement)))

    # -- witnesses ------------------------------------------------------------------------------

    def add_cosignature(self, note: str, witness_keys: Sequence[str]) -> tuple[str, ...]:
        """Store the cosignatures in `note` by configured witnesses; their names. Raises LogVerificationError."""
        witnesses = _witness_verifiers(witness_keys)
        try:
            signed = open_checkpoint(note, self.verifier, witnesses)
        except NoteError as exc:
            raise LogVerificationError(f"cosignature refused: {exc}") from exc
        if not signed.cosignatures:
            raise LogVerificationError("cosignature refused: no signature by a configured witness")
        now = self._clock()

        def store(session: Session) -> None:
            checkpoint_id = _signed_row(session, signed.checkpoint)
            for cosignature in signed.cosignatures:
                row = {
                    "checkpoint_id": checkpoint_id,
                    "witness": cosignature.witness,
                    "key_id": cosignature.key_id.hex(),
                    "cosigned_at": cosignature.timestamp,
                }
                exists = select(AuditCosignatureRow.id).filter_by(**row)
                if session.scalar(exists) is None:
                    session.add(AuditCosignatureRow(**row, received_at=now, line=cosignature.line))

        self._write(store, "store a cosignature in")
        self.publish()
        return tuple(c.witness for c in signed.cosignatures)

    def cosigned_checkpoint(self) -> str:
        """The latest checkpoint with the newest cosignature of each witness appended."""
        self.checkpoint()

        def read(session: Session) -> str:
            latest = _latest_row(session)
            if latest is None:
                raise AuditError("the log has no checkpoint")
            return latest[2] + "".join(_cosignature_lines(session, latest[0]))

        return self._read(read)

    def published_checkpoint(self) -> str | None:
        """The latest checkpoint with at least `witness_quorum` witnesses' cosignatures, with them; None if none."""
        self.checkpoint()
        return self._read(lambda session: _published(session, self.witness_quorum))

    def covers(self, index: int) -> bool:
        """Whether a published checkpoint cosigned by at least one (and `witness_quorum`) witness covers `index`."""
        note = self._read(lambda session: _published(session, max(1, self.witness_quorum)))
        return note is not None and Checkpoint.parse(Note.parse(note).text).size > index

    def publish(self) -> str | None:
        """Write the published checkpoint to the tile folder if it changed; the checkpoint."""
        note = self._read(lambda session: _published(session, self.witness_quorum))
        if self.tiles is not None and note is not None and note != self._published:
            self.tiles.publish(Checkpoint.parse(Note.parse(note).text).size, _StoredTiles(self))
            self.tiles.write_checkpoint(note)
            self._published = note
        return note

    # -- export ---------------------------------------------------------------------------------

    def export(self, start: int = 0, end: int | None = None) -> dict[str, Any]:
        """The entries [start, end) with their stored hashes and checkpoints, as the JSON export format."""
        return self.export_log(start, end).to_json()

    def export_log(self, start: int = 0, end: int | None = None) -> LogExport:
        """The export as an object. It ends at a signed checkpoint: with no `end`, a fresh one covering
        every entry; else the latest one at or below `end` (entries after it could not be verified)."""
        if end is None:
            end = Checkpoint.parse(Note.parse(self.checkpoint(force=True)).text).size
        limit = end

        def read(session: Session) -> LogExport:
            _check_range(start, limit, _size(session))
            rows = session.execute(
                select(AuditCheckpointRow.id, AuditCheckpointRow.size, AuditCheckpointRow.note)
                .where(AuditCheckpointRow.size <= limit)
                .order_by(AuditCheckpointRow.id)
            ).all()
            if not rows:
                raise AuditError(f"no signed checkpoint covers the first {limit} entries yet")
            latest_id, stop, latest_note = rows[-1]
            if stop < start:
                raise PreconditionError(f"no signed checkpoint ends inside [{start}, {limit})")
            return LogExport(
                origin=self.origin,
                checkpoint=latest_note + "".join(_cosignature_lines(session, latest_id)),
                entries=tuple(_leaves(session, start, stop)),
                hashes=tuple(_leaf_hashes(session, start, stop)),
                checkpoints=tuple(note for _, _, note in rows),
                start=start,
                verifier_key=self.verifier_key,
            )

        return self._read(read)

    # -- plumbing -------------------------------------------------------------------------------

    def _read(self, fn: Callable[[Session], T]) -> T:
        try:
            return self._db.read(fn)
        except (AuditError, ProofError):
            raise
        except Exception as exc:  # the contract: any storage failure is an AuditError
            raise AuditError(f"cannot read the audit log: {_reason(exc)}") from exc

    def _write(self, fn: Callable[[Session], T], what: str) -> T:
        try:
            return self._db.write(fn)
        except (AuditError, ProofError):
            raise
        except Exception as exc:  # the contract: any storage failure is an AuditError
            raise AuditError(f"cannot {what} the audit log: {_reason(exc)}") from exc


# -- keys ---------------------------------------------------------------------------------------


def load_signer(key_dir: Path, origin: str) -> Signer:
    """The log's signing key in `key_dir`, created (mode 0600, atomically) on first use; it must be for `origin`."""
    path = key_dir / KEY_FILE
    if not path.exists():
        try:
            fresh = Signer.generate(origin)
        except NoteError as exc:
            raise AuditError(f"invalid log origin {origin[:80]!r}: {exc}") from exc
        write_private(path, f"{fresh.skey}\n".encode(), replace=False)  # another process may win; then use its key
    signer = _read_signer(path)
    if signer.name != origin:
        raise AuditError(f"this log key is for origin {signer.name!r}, not {origin!r}", path=str(path))
    return signer


def stored_origin(key_dir: Path) -> str:
    """The origin of the log whose key is in `key_dir`."""
    return _read_signer(key_dir / KEY_FILE).name


def _read_signer(path: Path) -> Signer:
    try:
        return Signer.parse(read_private(path))
    except NoteError as exc:
        raise AuditError(f"not a log signing key: {exc}", path=str(path)) from exc


def _witness_verifiers(keys: Sequence[str]) -> list[Verifier]:
    try:
        witnesses = [Verifier.parse(key) for key in keys]
    except NoteError as exc:
        raise AuditError(f"a configured witness key is invalid: {exc}") from exc
    if not witnesses:
        raise LogVerificationError("cosignature refused: this log has no witnesses configured")
    return witnesses


# -- queries (each runs inside one transaction) -------------------------------------------------


def _size(session: Session) -> int:
    top = session.scalar(select(func.max(AuditNodeRow.idx)).where(AuditNodeRow.level == 0))
    return 0 if top is None else top + 1


def _append(session: Session, entries: Sequence[bytes], now: float) -> int:
    size = _size(session)
    top = session.scalar(select(func.max(AuditLeafRow.idx)))
    if (0 if top is None else top + 1) != size:
        raise AuditError(f"the log's entries ({top}) and hashes ({size}) disagree: refusing to extend a damaged log")
    new: dict[NodeId, bytes] = {}
    for offset, data in enumerate(entries):
        index = size + offset
        new[(0, index)] = leaf_hash(data)
        for level, position in completed_nodes(index):
            left = (level - 1, 2 * position)
            left_hash = new[left] if left in new else _nodes(session, [left])[left]
            new[(level, position)] = node_hash(left_hash, new[(level - 1, 2 * position + 1)])
    session.execute(
        insert(AuditLeafRow), [{"idx": size + i, "data": d, "appended_at": now} for i, d in enumerate(entries)]
    )
    session.execute(insert(AuditNodeRow), [{"level": lv, "idx": i, "digest": h} for (lv, i), h in new.items()])
    return size


def _nodes(session: Session, wanted: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """Stored subtree hashes, one indexed query per level (a row-value IN would scan the table)."""
    by_level: dict[int, set[int]] = {}
    for level, idx in wanted:
        by_level.setdefault(level, set()).add(idx)
    found: dict[NodeId, bytes] = {}
    for level, indexes in sorted(by_level.items()):
        ordered = sorted(indexes)
        for first in range(0, len(ordered), _NODE_BATCH):
            rows = session.execute(
                select(AuditNodeRow.idx, AuditNodeRow.digest).where(
                    AuditNodeRow.level == level, AuditNodeRow.idx.in_(ordered[first : first + _NODE_BATCH])
                )
            )
            found.update(((level, idx), _bytes(digest)) for idx, digest in rows)
    missing = sorted(
        (level, idx) for level, indexes in by_level.items() for idx in indexes if (level, idx) not in found
    )
    if missing:
        raise AuditError(f"the stored tree lacks subtree {missing[0]} (level, index): damaged or tampered")
    return found


def _root(session: Session, size: int) -> bytes:
    _check_range(0, size, _size(session))
    if size == 0:
        return EMPTY_ROOT
    nodes = range_nodes(0, size)
    return hash_from_nodes(nodes, _nodes(session, nodes))


def _proof(session: Session, ranges: list[tuple[int, int]], size: int) -> list[bytes]:
    _check_range(0, size, _size(session))
    parts = [range_nodes(a, b) for a, b in ranges]
    hashes = _nodes(session, (node for nodes in parts for node in nodes))
    return [hash_from_nodes(nodes, hashes) for nodes in parts]


def _leaves(session: Session, start: int, end: int) -> list[bytes]:
    statement = select(AuditLeafRow.data).where(AuditLeafRow.idx >= start, AuditLeafRow.idx < end)
    return [_bytes(data) for data in session.scalars(statement.order_by(AuditLeafRow.idx))]


def _leaf_hashes(session: Session, start: int, end: int, level: int = 0) -> list[bytes]:
    statement = select(AuditNodeRow.digest).where(
        AuditNodeRow.level == level, AuditNodeRow.idx >= start, AuditNodeRow.idx < end
    )
    return [_bytes(digest) for digest in session.scalars(statement.order_by(AuditNodeRow.idx))]


class _StoredTiles:
    """The stored tree as a `TileSource`: tile hashes and entries straight from the database."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def hashes(self, level: int, start: int, end: int) -> list[bytes]:
        return self._log._read(lambda session: _leaf_hashes(session, start, end, TILE_HEIGHT * level))

    def entries(self, start: int, end: int) -> list[bytes]:
        return self._log._read(lambda session: _leaves(session, start, end))


def _published(session: Session, quorum: int) -> str | None:
    """The newest checkpoint cosigned by at least `quorum` distinct witnesses, with their newest lines."""
    if quorum <= 0:
        latest = _latest_row(session)
        return None if latest is None else latest[2] + "".join(_cosignature_lines(session, latest[0]))
    cosigned = (
        select(AuditCosignatureRow.checkpoint_id)
        .group_by(AuditCosignatureRow.checkpoint_id)
        .having(func.count(func.distinct(AuditCosignatureRow.witness)) >= quorum)
        .order_by(AuditCosignatureRow.checkpoint_id.desc())
        .limit(1)
    )
    checkpoint_id = session.scalar(cosigned)
    if checkpoint_id is None:
        return None
    note = session.scalar(select(AuditCheckpointRow.note).where(AuditCheckpointRow.id == checkpoint_id))
    return str(note) + "".join(_cosignature_lines(session, checkpoint_id))


def _bytes(value: object) -> bytes:
    """A stored value as bytes, even if someone rewrote it with another SQLite type (`||` makes TEXT)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _latest_row(session: Session) -> tuple[int, int, str, float] | None:
    row = session.execute(
        select(AuditCheckpointRow.id, AuditCheckpointRow.size, AuditCheckpointRow.note, AuditCheckpointRow.signed_at)
        .order_by(AuditCheckpointRow.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _signed_row(session: Session, checkpoint: Checkpoint) -> int:
    """The id of the stored checkpoint with exactly this text (a checkpoint this log signed)."""
    rows = session.execute(
        select(AuditCheckpointRow.id, AuditCheckpointRow.note).where(AuditCheckpointRow.size == checkpoint.size)
    )
    for checkpoint_id, note in rows:
        if Note.parse(note).text == checkpoint.text:
            return int(checkpoint_id)
    raise LogVerificationError(f"cosignature refused: this log never signed that checkpoint of size {checkpoint.size}")


def _cosignature_lines(session: Session, checkpoint_id: int) -> list[str]:
    """The newest cosignature line of each witness key on one checkpoint."""
    rows = session.execute(
        select(AuditCosignatureRow.witness, AuditCosignatureRow.key_id, AuditCosignatureRow.line)
        .where(AuditCosignatureRow.checkpoint_id == checkpoint_id)
        .order_by(AuditCosignatureRow.cosigned_at, AuditCosignatureRow.id)
    )
    newest = {(witness, key): line for witness, key, line in rows}
    return list(newest.values())


def _check_range(start: int, end: int, size: int) -> None:
    if not 0 <= start <= end <= size:
        raise PreconditionError(f"range [{start}, {end}) is not inside the log of {size}", expected=size, computed=end)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())[:200]
