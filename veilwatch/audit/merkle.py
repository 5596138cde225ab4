"""RFC 6962 / RFC 9162 Merkle trees as pure functions, after transparency-dev/merkle.

    leaf_hash(d)     = SHA-256(0x00 ‖ d)
    node_hash(l, r)  = SHA-256(0x01 ‖ l ‖ r)
    root([])         = SHA-256()               (the empty tree)

A proof is a list of subtree hashes. Which subtrees, is a matter of sizes only: `inclusion_ranges`
and `consistency_ranges` give the leaf ranges [start, end) of RFC 9162's PATH and SUBPROOF, and
`range_nodes` splits such a range into the perfect subtrees (level, index) it is made of. So a
proof can be built from the leaves (`inclusion_proof`, `consistency_proof`), or from stored
perfect-subtree hashes without re-hashing the log (`veilwatch.audit.log`), by the same code.

Verifying is separate and follows transparency-dev/merkle's proof/verify.go. Every bad input or
mismatch raises a `ProofError` (a `ValueError`) that carries the expected and computed values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeId",
    "PreconditionError",
    "ProofError",
    "ProofLengthError",
    "RootMismatchError",
    "completed_nodes",
    "consistency_proof",
    "consistency_ranges",
    "hash_from_nodes",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# A perfect subtree: `level` 0 is one leaf; (level, index) covers leaves [index·2^level, (index+1)·2^level).
NodeId = tuple[int, int]


class ProofError(ValueError):
    """A proof, hash or size does not check out; `expected` and `computed` say what differed."""

    def __init__(self, message: str, *, expected: bytes | int | None = None, computed: bytes | int | None = None):
        super().__init__(message)
        self.expected = expected
        self.computed = computed


class PreconditionError(ProofError):
    """An argument is out of range: a hash of the wrong length, an index beyond the size, sizes that shrink."""


class ProofLengthError(ProofError):
    """The proof has the wrong number of hashes for these sizes."""


class RootMismatchError(ProofError):
    """The proof leads to another root than the one given."""


# -- hashing ------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an inner node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of the tree over these leaf hashes (SHA-256 of nothing for no leaves)."""
    _check_hashes("leaf hash", leaf_hashes)
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def _mth(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]), level by level; an odd last node moves up unchanged, which is RFC 6962's split."""
    if start == end:
        return EMPTY_ROOT
    level = list(leaf_hashes[start:end])
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# -- which subtrees a proof is made of ----------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two below n (n ≥ 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes prove leaf `index` in a tree of `size` (RFC 9162 PATH), leaf level first."""
    _check_index(index, size)
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes prove the tree of `size1` a prefix of that of `size2` (RFC 9162 SUBPROOF)."""
    _check_sizes(size1, size2)
    if size1 in (0, size2):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, first, known = 0, size2, size1, True  # SUBPROOF(first, D[start:end], known)
    while end - start != first:
        k = _split(end - start)
        if first <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, first, known = start + k, first - k, False
    if not known:  # the verifier does not have this subtree's hash from the old root
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up the subtree over leaves [start, end), largest (leftmost) first."""
    if not 0 <= start < end:
        raise PreconditionError(f"empty or negative leaf range [{start}, {end})")
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start % (1 << level):
            raise PreconditionError(f"leaf range [{start}, {end}) is not a subtree of an RFC 6962 tree")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def hash_from_nodes(nodes: Sequence[NodeId], hashes: Mapping[NodeId, bytes]) -> bytes:
    """The hash of a subtree from its perfect parts (as `range_nodes` lists them): folded from the right."""
    result = hashes[nodes[-1]]
    for node in reversed(nodes[:-1]):
        result = node_hash(hashes[node], result)
    return result


def completed_nodes(index: int) -> list[NodeId]:
    """The perfect subtrees above leaf 0 that appending leaf `index` completes, lowest first."""
    if index < 0:
        raise PreconditionError(f"negative leaf index {index}")
    nodes, level = [], 1
    while (index + 1) % (1 << level) == 0:
        nodes.append((level, ((index + 1) >> level) - 1))
        level += 1
    return nodes


# -- building proofs from the leaves ------------------------------------------------------------


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree over `leaf_hashes` (the whole list)."""
    _check_hashes("leaf hash", leaf_hashes)
    return [_mth(leaf_hashes, a, b) for a, b in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the tree's first `size1` leaves to the whole tree over `leaf_hashes`."""
    _check_hashes("leaf hash", leaf_hashes)
    return [_mth(leaf_hashes, a, b) for a, b in consistency_ranges(size1, len(leaf_hashes))]


# -- verifying (after proof/verify.go) ----------------------------------------------------------


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that `proof` puts `leaf_hash` at `index` in the tree of `size` with this root; else raise ProofError."""
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise RootMismatchError(
            f"inclusion proof of leaf {index} in tree {size} leads to another root", expected=root, computed=computed
        )


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that an inclusion proof of `leaf_hash` at `index` in a tree of `size` leads to."""
    _check_index(index, size)
    _check_hash("leaf hash", leaf_hash)
    _check_hashes("proof hash", proof)
    inner, border = _decompose(index, size)
    _check_length(proof, inner + border, f"inclusion proof of leaf {index} in tree {size}")
    result = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(result, proof[inner:])


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of `size1` with `root1` is a prefix of the tree of `size2` with `root2`."""
    _check_sizes(size1, size2)
    _check_hash("first root", root1)
    _check_hash("second root", root2)
    _check_hashes("proof hash", proof)
    if size1 == size2:
        _check_length(proof, 0, f"consistency proof of tree {size1} with itself")
        _check_match(root2, root1, f"two roots for one tree size {size1}")
        return
    if size1 == 0:  # everything extends the empty tree, whose root is fixed
        _check_length(proof, 0, "consistency proof from the empty tree")
        _check_match(EMPTY_ROOT, root1, "the empty tree's root is SHA-256 of nothing")
        return
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    # The proof starts with the hash of the subtree of 2^shift leaves ending at size1, unless
    # that subtree is the whole old tree, whose root the verifier has.
    seed_known = size1 == 1 << shift
    _check_length(proof, (0 if seed_known else 1) + inner + border, f"consistency proof {size1} → {size2}")
    seed, rest = (root1, proof) if seed_known else (proof[0], proof[1:])
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    _check_match(root1, hash1, f"consistency proof {size1} → {size2} does not lead to the first root")
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    _check_match(root2, hash2, f"consistency proof {size1} → {size2} does not lead to the second root")


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof's length where the paths to `index` and to `size - 1` meet."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        seed = node_hash(seed, sibling) if (index >> i) & 1 == 0 else node_hash(sibling, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like _chain_inner, using only the left siblings: the same subtree as it was before it grew."""
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


# -- preconditions ------------------------------------------------------------------------------


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes | bytearray) else None
        raise PreconditionError(f"{what} must be {HASH_SIZE} bytes, got {got}", expected=HASH_SIZE, computed=got)


def _check_hashes(what: str, values: Sequence[bytes]) -> None:
    for position, value in enumerate(values):
        _check_hash(f"{what} {position}", value)


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise PreconditionError(f"leaf index {index} is not inside a tree of {size}", expected=size, computed=index)


def _check_sizes(size1: int, size2: int) -> None:
    if not 0 <= size1 <= size2:
        raise PreconditionError(f"tree sizes must not shrink: {size1} → {size2}", expected=size2, computed=size1)


def _check_length(proof: Sequence[bytes], want: int, what: str) -> None:
    if len(proof) != want:
        raise ProofLengthError(f"{what}: {len(proof)} hashes, want {want}", expected=want, computed=len(proof))


def _check_match(expected: bytes, computed: bytes, message: str) -> None:
    if computed != expected:
        raise RootMismatchError(message, expected=expected, computed=computed)
