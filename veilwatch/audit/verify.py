"""Offline verification of a log export (or of entries fetched from a server), and where it breaks.

Trust comes only from signatures: the latest checkpoint, the checkpoint the user saved earlier,
and every checkpoint in the export, each verified under the log's key the user supplies. Each
one is an *anchor*: a tree size and a root the log is committed to. The entries must rebuild
every anchor's root; then they are exactly what the log signed, and the anchors are consistent
with each other (the saved checkpoint included), because they are prefixes of one list.

When an anchor does not match, the first bad index is found by walking down from its root:
at each node, a pair of child hashes that hashes to the trusted parent is trusted too (SHA-256
is collision resistant). Candidates come from the entries and from the leaf hashes the log
stored when each entry was appended (kept in a separate table), so a changed, removed, moved or
inserted entry is pinned to its index even though everything after it shifted. If both copies
were rewritten consistently, the walk stops at the smallest subtree it can vouch for, and the
result says which entries are proven good and which index is proven bad, not more.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from veilwatch.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    hash_from_nodes,
    leaf_hash,
    node_hash,
    range_nodes,
)
from veilwatch.audit.note import NoteError, SignedCheckpoint, Verifier, open_checkpoint

__all__ = ["EXPORT_FORMAT", "ExportError", "LogExport", "VerifyResult", "verify_log"]

EXPORT_FORMAT = "veilwatch-audit-export/1"


class ExportError(ValueError):
    """A log export is malformed or cannot be verified as given."""


@dataclass(frozen=True)
class LogExport:
    """Entries of a log from index `start`, the leaf hashes it stored, and its signed checkpoints."""

    origin: str
    checkpoint: str  # the latest signed checkpoint, with any cosignatures
    entries: tuple[bytes, ...]
    hashes: tuple[bytes, ...] | None = None  # None: the source gave no stored hashes
    checkpoints: tuple[str, ...] = ()  # every checkpoint the log signed up to the export's end
    start: int = 0
    verifier_key: str = ""  # as the log states it: for information, never trusted

    def to_json(self) -> dict[str, Any]:
        """The export as a JSON object (bytes as base64)."""
        return {
            "format": EXPORT_FORMAT,
            "origin": self.origin,
            "verifier_key": self.verifier_key,
            "checkpoint": self.checkpoint,
            "checkpoints": list(self.checkpoints),
            "start": self.start,
            "entries": [_b64(e) for e in self.entries],
            "hashes": None if self.hashes is None else [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_json(cls, data: Any) -> LogExport:
        """Read an export object; anything malformed raises ExportError."""
        if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
            raise ExportError(f"not a log export (format {EXPORT_FORMAT} expected)")
        try:
            hashes = data.get("hashes")
            export = cls(
                origin=_text(data["origin"]),
                checkpoint=_text(data["checkpoint"]),
                entries=tuple(_unb64(e) for e in _list(data["entries"])),
                hashes=None if hashes is None else tuple(_unb64(h) for h in _list(hashes)),
                checkpoints=tuple(_text(c) for c in _list(data.get("checkpoints", []))),
                start=_count(data.get("start", 0)),
                verifier_key=_text(data.get("verifier_key", "")),
            )
        except KeyError as exc:
            raise ExportError(f"the export has no {exc.args[0]!r}") from exc
        if export.hashes is not None and any(len(h) != HASH_SIZE for h in export.hashes):
            raise ExportError(f"stored leaf hashes are {HASH_SIZE} bytes each")
        return export


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(value: Any) -> bytes:
    try:
        return base64.b64decode(_text(value), validate=True)
    except binascii.Error as exc:
        raise ExportError("an entry or hash is not base64") from exc


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ExportError(f"expected text, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ExportError(f"expected a list, got {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ExportError("start must be a non-negative integer")
    return value


@dataclass(frozen=True)
class VerifyResult:
    """What verification found. `verified_prefix` entries are proven; `first_bad_index` is proven wrong."""

    ok: bool
    origin: str
    size: int  # of the latest checkpoint
    root: bytes
    checkpoint: str  # the latest checkpoint note (save it to check the next export against)
    saved_size: int | None
    entries: int  # how many entries the export holds
    verified_prefix: int
    first_bad_index: int | None
    problems: tuple[str, ...] = ()
    cosigned_by: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        """Whether every entry before the first bad index is proven good (the index is exact)."""
        return self.first_bad_index is not None and self.first_bad_index == self.verified_prefix

    @property
    def summary(self) -> str:
        """One line: verified, or the first bad index and the first problem."""
        if self.ok:
            return f"{self.origin}: {self.size} entries verified, root {_b64(self.root)}"
        where = "" if self.first_bad_index is None else f"first bad index {self.first_bad_index}; "
        return f"{self.origin}: verification failed: {where}{self.problems[0]}"


@dataclass(frozen=True)
class _Anchor:
    size: int
    root: bytes
    source: str


def verify_log(
    export: LogExport,
    log_key: str | Verifier,
    *,
    saved_checkpoint: str | None = None,
    witnesses: Sequence[str | Verifier] = (),
) -> VerifyResult:
    """Check an export against the log's key and a checkpoint saved earlier; locate any tampering."""
    key = log_key if isinstance(log_key, Verifier) else Verifier.parse(log_key)
    witness_keys = [w if isinstance(w, Verifier) else Verifier.parse(w) for w in witnesses]
    if export.start != 0:
        raise ExportError("verification rebuilds the tree, so it needs an export from index 0")
    try:
        latest = open_checkpoint(export.checkpoint, key, witness_keys)
    except NoteError as exc:
        return _refused(key.name, export, f"the latest checkpoint does not verify under the log's key: {exc}")
    problems: list[str] = []
    anchors = [_Anchor(latest.checkpoint.size, latest.checkpoint.root, "the latest checkpoint")]
    saved = _saved(saved_checkpoint, key, problems)
    if saved is not None:
        anchors.append(_Anchor(saved.checkpoint.size, saved.checkpoint.root, "the checkpoint you saved"))
        if saved.checkpoint.size > latest.checkpoint.size:
            problems.append(
                f"rollback: the log now shows {latest.checkpoint.size} entries, "
                f"but you saved a checkpoint of {saved.checkpoint.size}"
            )
    anchors.extend(_history(export.checkpoints, key, problems))
    anchors = _agreeing(anchors, problems)
    verified, first_bad = _locate(export, anchors, latest.checkpoint.size, problems)
    return VerifyResult(
        ok=not problems,
        origin=latest.checkpoint.origin,
        size=latest.checkpoint.size,
        root=latest.checkpoint.root,
        checkpoint=latest.note,
        saved_size=None if saved is None else saved.checkpoint.size,
        entries=len(export.entries),
        verified_prefix=verified,
        first_bad_index=first_bad,
        problems=tuple(problems),
        cosigned_by=tuple(c.witness for c in latest.cosignatures),
    )


def _refused(origin: str, export: LogExport, problem: str) -> VerifyResult:
    return VerifyResult(False, origin, 0, EMPTY_ROOT, "", None, len(export.entries), 0, None, (problem,))


def _saved(note: str | None, key: Verifier, problems: list[str]) -> SignedCheckpoint | None:
    if note is None:
        return None
    try:
        return open_checkpoint(note, key)
    except NoteError as exc:
        problems.append(f"the saved checkpoint does not verify under the log's key: {exc}")
        return None


def _history(notes: Sequence[str], key: Verifier, problems: list[str]) -> list[_Anchor]:
    anchors = []
    for number, note in enumerate(notes):
        try:
            signed = open_checkpoint(note, key)
        except NoteError as exc:
            problems.append(f"stored checkpoint #{number} does not verify (edited?): {exc}")
            continue
        anchors.append(_Anchor(signed.checkpoint.size, signed.checkpoint.root, f"stored checkpoint #{number}"))
    return anchors


def _agreeing(anchors: list[_Anchor], problems: list[str]) -> list[_Anchor]:
    """One anchor per size; two signed roots for one size is a split view."""
    by_size: dict[int, _Anchor] = {}
    for anchor in anchors:
        known = by_size.setdefault(anchor.size, anchor)
        if known.root != anchor.root:
            problems.append(
                f"split view: {known.source} and {anchor.source} sign different trees of size {anchor.size}"
            )
    return sorted(by_size.values(), key=lambda a: a.size)


# -- locating the first bad entry ---------------------------------------------------------------


class _Tree:
    """Every perfect-subtree hash over a list of leaf hashes, so any subtree's hash takes O(log n)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self.levels = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def hash(self, start: int, end: int) -> bytes | None:
        """The hash of the subtree over [start, end), or None when the leaves do not reach `end`."""
        if end > self.size:
            return None
        if start == end:
            return EMPTY_ROOT
        nodes = range_nodes(start, end)
        return hash_from_nodes(nodes, {(lv, i): self.levels[lv][i] for lv, i in nodes})


def _locate(export: LogExport, anchors: list[_Anchor], latest_size: int, problems: list[str]) -> tuple[int, int | None]:
    """Entries proven good, and the first index proven bad, against the signed anchors."""
    entries = _Tree([leaf_hash(e) for e in export.entries])
    stored = None if export.hashes is None else _Tree(export.hashes)
    rebuilt = [entries.hash(0, a.size) == a.root for a in anchors]
    matching = [a for a, ok in zip(anchors, rebuilt, strict=True) if ok]
    broken = [a for a, ok in zip(anchors, rebuilt, strict=True) if not ok]
    first_bad = None
    if not broken:
        verified = max((a.size for a in matching), default=0)
        if stored is not None:
            first_bad = _stored_mismatch(entries, stored, latest_size, problems)
    else:
        # The earliest signed statement the entries contradict; anchors below it vouch for a prefix.
        low = broken[0]
        verified = max((a.size for a in matching if a.size < low.size), default=0)
        later = [a for a in matching if a.size > low.size]
        if later:  # the entries rebuild a bigger signed tree that does not extend this one
            problems.append(
                f"split view: the log signed {later[-1].source} (size {later[-1].size}), which does not extend "
                f"{low.source} (size {low.size})"
            )
        proven, first_bad = _descend(low, entries, stored)
        verified = max(verified, proven)
        if first_bad is not None:
            problems.append(_describe(low, first_bad, entries.size))
        else:
            problems.append(
                f"the entries do not rebuild {low.source} (size {low.size}) and no second copy vouches for them: "
                f"the first bad entry lies between index {verified} and {low.size - 1}"
            )
    if entries.size > latest_size:  # an export ends at its checkpoint: more is unsigned, or forged
        problems.append(f"{entries.size - latest_size} entries after the latest checkpoint are covered by no signature")
        first_bad = latest_size if first_bad is None else min(first_bad, latest_size)
    if first_bad is not None:
        verified = min(verified, first_bad)
    return verified, first_bad


def _descend(anchor: _Anchor, entries: _Tree, stored: _Tree | None) -> tuple[int, int | None]:
    """Walk down from a trusted root to the first wrong leaf: (entries proven good, first proven-bad index)."""
    start, end, trusted = 0, anchor.size, anchor.root
    while end - start > 1:
        mid = start + (1 << ((end - start - 1).bit_length() - 1))
        pair = _trusted_children(start, mid, end, trusted, entries, stored)
        if pair is None:  # both copies differ below here: only missing entries are certainly bad
            return start, (max(start, entries.size) if entries.size < end else None)
        left, right = pair
        if entries.hash(start, mid) != left:
            end, trusted = mid, left
        else:
            start, trusted = mid, right
    return start, start


def _trusted_children(
    start: int, mid: int, end: int, trusted: bytes, entries: _Tree, stored: _Tree | None
) -> tuple[bytes, bytes] | None:
    """The child hashes that hash to the trusted parent, from either copy of the leaves."""
    sources = [entries] if stored is None else [entries, stored]
    lefts = {h for t in sources if (h := t.hash(start, mid)) is not None}
    rights = {h for t in sources if (h := t.hash(mid, end)) is not None}
    return next(((lh, rh) for lh in lefts for rh in rights if node_hash(lh, rh) == trusted), None)


def _describe(anchor: _Anchor, bad: int, count: int) -> str:
    if bad >= count:
        return f"entries from index {bad} on are missing ({anchor.source} has {anchor.size})"
    return f"entry {bad} is not the entry {anchor.source} (size {anchor.size}) signed: changed, moved or inserted"


def _stored_mismatch(entries: _Tree, stored: _Tree, size: int, problems: list[str]) -> int | None:
    """Entries are proven; a leaf hash the log stored that differs from its entry is an edited row."""
    for index in range(min(size, entries.size)):
        if index >= stored.size:
            problems.append(f"the stored leaf hashes stop at index {index} (rows deleted)")
            return index
        if stored.levels[0][index] != entries.levels[0][index]:
            problems.append(f"the stored leaf hash of entry {index} was altered (the entry itself is intact)")
            return index
    return None
