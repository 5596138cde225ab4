"""The Merkle tree functions against published vectors, a naive RFC 6962 reference, and Hypothesis."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veilwatch.audit.merkle import (
    EMPTY_ROOT,
    PreconditionError,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    completed_nodes,
    consistency_proof,
    consistency_ranges,
    hash_from_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent / "data" / "merkle"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _b64(values: Sequence[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


# --- a naive reference: RFC 6962 §2.1 read literally, recursion and all -------------------------


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*, as written in the RFC."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m ≤ n (empty when m = n)."""
    return ref_subproof(m, leaves, True) if m < len(leaves) else []


def data(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


# --- published vectors (transparency-dev/merkle) -----------------------------------------------


def test_published_json_vectors_give_zero_mismatches() -> None:
    checked, mismatches = 0, []

    def inclusion(c: dict[str, Any]) -> None:
        leaf, root_hash = base64.b64decode(c["leafHash"]), base64.b64decode(c["root"])
        verify_inclusion(leaf, c["leafIdx"], c["treeSize"], _b64(c["proof"]), root_hash)

    def consistency(c: dict[str, Any]) -> None:
        root1, root2 = base64.b64decode(c["root1"]), base64.b64decode(c["root2"])
        verify_consistency(c["size1"], c["size2"], _b64(c["proof"]), root1, root2)

    for name, check in (("inclusion.json", inclusion), ("consistency.json", consistency)):
        for path, case in _load(name).items():
            checked += 1
            if _outcome(functools.partial(check, case)) != case["wantErr"]:
                mismatches.append(path)
    print(f"merkle vectors: {checked} checked, {len(mismatches)} mismatches")
    assert checked == 77 and mismatches == []


def _outcome(check: Callable[[], None]) -> bool:
    """True when the check raised ProofError (and only that)."""
    try:
        check()
    except ProofError:
        return True
    return False


def test_published_hasher_vectors() -> None:
    vectors = _load("rfc6962.json")
    for case in vectors["hasher"]:
        if case["fn"] == "empty":
            got = root([])
        elif case["fn"] == "leaf":
            got = leaf_hash(bytes.fromhex(case["data"]))
        else:
            got = node_hash(bytes.fromhex(case["left"]), bytes.fromhex(case["right"]))
        assert got.hex() == case["want"], case["desc"]
    assert EMPTY_ROOT.hex() == vectors["hasher"][0]["want"]


def test_published_roots_and_proofs_are_rebuilt_exactly() -> None:
    vectors = _load("rfc6962.json")
    leaves = [leaf_hash(bytes.fromhex(x)) for x in vectors["leaves"]]
    roots = [bytes.fromhex(x) for x in vectors["roots"]]
    for size in range(1, 9):
        assert root(leaves[:size]) == roots[size - 1]
    for case in vectors["inclusion"]:
        want = [bytes.fromhex(x) for x in case["proof"]]
        index, size = case["leaf"] - 1, case["size"]
        assert inclusion_proof(index, leaves[:size]) == want
        verify_inclusion(leaves[index], index, size, want, roots[size - 1])
    for case in vectors["consistency"]:
        want = [bytes.fromhex(x) for x in case["proof"]]
        size1, size2 = case["size1"], case["size2"]
        assert consistency_proof(size1, leaves[:size2]) == want
        verify_consistency(size1, size2, want, roots[size1 - 1], roots[size2 - 1])


def test_the_go_corruptions_of_every_published_proof_are_rejected() -> None:
    """The probes of verify_test.go's corruptInclusionProof / corruptConsistencyProof, on every vector."""
    vectors = _load("rfc6962.json")
    leaves = [leaf_hash(bytes.fromhex(x)) for x in vectors["leaves"]]
    roots = [bytes.fromhex(x) for x in vectors["roots"]]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = 0
    for case in vectors["inclusion"]:
        proof = [bytes.fromhex(x) for x in case["proof"]]
        index, size = case["leaf"] - 1, case["size"]
        good = roots[size - 1]
        for args in _inclusion_probes(index, size, proof, good, leaves[index], some):
            probes += 1
            with pytest.raises(ProofError):
                verify_inclusion(*args)
    for case in vectors["consistency"]:
        proof = [bytes.fromhex(x) for x in case["proof"]]
        if not proof:
            continue
        size1, size2 = case["size1"], case["size2"]
        for probe in _consistency_probes(size1, size2, roots[size1 - 1], roots[size2 - 1], proof):
            probes += 1
            with pytest.raises(ProofError):
                verify_consistency(*probe)
    assert probes > 80


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], good: bytes, leaf: bytes, some: bytes
) -> list[tuple[bytes, int, int, list[bytes], bytes]]:
    probes = [
        (leaf, index - 1, size, proof, good),
        (leaf, index + 1, size, proof, good),
        (leaf, index ^ 2, size, proof, good),
        (leaf, index, size * 2, proof, good),
        (leaf, index, size // 2, proof, good),
        (b"WrongLeaf", index, size, proof, good),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, proof, some),
        (leaf, index, size, [*proof, b""], good),
        (leaf, index, size, [*proof, good], good),
        (leaf, index, size, [b"", *proof], good),
        (leaf, index, size, [good, *proof], good),
    ]
    for i in range(len(proof)):
        probes.append((leaf, index, size, _flip(proof, i, 8), good))
    if proof:
        probes.append((leaf, index, size, proof[:-1], good))
    if len(proof) > 1:
        probes.append((leaf, index, size, [proof[0], some, *proof[1:]], good))
    return probes


def _consistency_probes(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[tuple[int, int, list[bytes], bytes, bytes]]:
    probes = [
        (size1 - 1, size2, proof, root1, root2),
        (size1 + 1, size2, proof, root1, root2),
        (size1 ^ 2, size2, proof, root1, root2),
        (size1, size2 * 2, proof, root1, root2),
        (size1, size2 // 2, proof, root1, root2),
        (size1, size2, proof, b"WrongRoot", root2),
        (size1, size2, proof, root1, b"WrongRoot"),
        (size1, size2, proof, root2, root1),
        (size1, size2, [], root1, root2),
        (size1, size2, [*proof, b""], root1, root2),
        (size1, size2, [*proof, root1], root1, root2),
        (size1, size2, [*proof, root2], root1, root2),
        (size1, size2, [b"", *proof], root1, root2),
        (size1, size2, [root1, *proof], root1, root2),
        (size1, size2, [root2, *proof], root1, root2),
        (size1, size2, [proof[0], *proof], root1, root2),
        (size1, size2, proof[:-1], root1, root2),
    ]
    probes.extend((size1, size2, _flip(proof, i, 16), root1, root2) for i in range(len(proof)))
    return probes


def _flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[position])
    changed[0] ^= bit
    return [bytes(changed) if i == position else p for i, p in enumerate(proof)]


# --- the naive reference ------------------------------------------------------------------------


def test_roots_and_proofs_match_the_naive_reference_up_to_70_leaves() -> None:
    for n in range(0, 71):
        leaves = data(n)
        hashes = [leaf_hash(d) for d in leaves]
        assert root(hashes) == ref_mth(leaves)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            assert proof == ref_path(m, leaves)
            verify_inclusion(hashes[m], m, n, proof, ref_mth(leaves))
        for m in range(1, n + 1):
            proof = consistency_proof(m, hashes)
            assert proof == ref_proof(m, leaves)
            verify_consistency(m, n, proof, ref_mth(leaves[:m]), ref_mth(leaves))


def test_proofs_from_stored_perfect_subtrees_equal_proofs_from_leaves() -> None:
    """What the log does: keep the perfect subtrees as leaves are appended, fold them into proofs."""
    hashes = [leaf_hash(d) for d in data(45)]
    stored: dict[tuple[int, int], bytes] = {}
    for index, value in enumerate(hashes):
        stored[(0, index)] = value
        for level, position in completed_nodes(index):
            stored[(level, position)] = node_hash(
                stored[(level - 1, 2 * position)], stored[(level - 1, 2 * position + 1)]
            )
    assert len(stored) == 45 + 22 + 11 + 5 + 2 + 1
    for size in range(1, 46):
        assert hash_from_nodes(range_nodes(0, size), stored) == root(hashes[:size])
        for size1 in range(1, size):
            ranges = consistency_ranges(size1, size)
            assert [hash_from_nodes(range_nodes(a, b), stored) for a, b in ranges] == consistency_proof(
                size1, hashes[:size]
            )


# --- Hypothesis --------------------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=150)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, pick=st.integers(min_value=0), tamper=st.data())
def test_inclusion_proofs_verify_and_any_tampering_fails(leaves: list[bytes], pick: int, tamper: st.DataObject) -> None:
    hashes = [leaf_hash(d) for d in leaves]
    index, size, good = pick % len(hashes), len(hashes), root(hashes)
    proof = inclusion_proof(index, hashes)
    assert proof == ref_path(index, leaves)
    verify_inclusion(hashes[index], index, size, proof, good)
    assert root_from_inclusion_proof(hashes[index], index, size, proof) == good
    bad_proof = _tampered(proof, tamper)
    if bad_proof is not None:
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, bad_proof, good)
    other = tamper.draw(st.integers(min_value=0, max_value=size - 1))
    if hashes[other] != hashes[index]:
        with pytest.raises(RootMismatchError):
            verify_inclusion(hashes[other], index, size, proof, good)
    wrong_index = tamper.draw(st.integers(min_value=0, max_value=size))
    if wrong_index == size or hashes[wrong_index] != hashes[index]:  # an equal leaf there would be honest
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], wrong_index, size, proof, good)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, pick=st.integers(min_value=0), tamper=st.data())
def test_consistency_proofs_verify_and_any_tampering_fails(
    leaves: list[bytes], pick: int, tamper: st.DataObject
) -> None:
    hashes = [leaf_hash(d) for d in leaves]
    size2 = len(hashes)
    size1 = 1 + pick % size2
    root1, root2 = root(hashes[:size1]), root(hashes)
    proof = consistency_proof(size1, hashes)
    assert proof == ref_proof(size1, leaves)
    verify_consistency(size1, size2, proof, root1, root2)
    bad_proof = _tampered(proof, tamper)
    if bad_proof is not None:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad_proof, root1, root2)
    if size1 < size2:
        # A fork: the same old tree, one changed leaf after it. The honest proof cannot lead there.
        changed = tamper.draw(st.integers(min_value=size1, max_value=size2 - 1))
        forked = [*hashes[:changed], leaf_hash(b"forged" + leaves[changed]), *hashes[changed + 1 :]]
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, proof, root1, root(forked))
        # And a rewritten history is no extension of the old tree, whatever proof the log sends.
        rewritten = tamper.draw(st.integers(min_value=0, max_value=size1 - 1))
        history = [*hashes[:rewritten], leaf_hash(b"rewritten" + leaves[rewritten]), *hashes[rewritten + 1 :]]
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, consistency_proof(size1, history), root1, root(history))


def _tampered(proof: list[bytes], draw: st.DataObject) -> list[bytes] | None:
    """The proof with one change: a flipped bit, a dropped, extra, repeated or swapped hash (None: nothing to do)."""
    kinds = (
        ["append", "prepend"] + (["flip", "drop", "duplicate"] if proof else []) + (["swap"] if len(proof) > 1 else [])
    )
    kind = draw.draw(st.sampled_from(kinds))
    if kind == "append":
        return [*proof, draw.draw(st.binary(min_size=32, max_size=32))]
    if kind == "prepend":
        return [draw.draw(st.binary(min_size=32, max_size=32)), *proof]
    position = draw.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    if kind == "flip":
        return _flip(proof, position, 1 << draw.draw(st.integers(min_value=0, max_value=7)))
    if kind == "drop":
        return proof[:position] + proof[position + 1 :]
    if kind == "duplicate":
        return [*proof[: position + 1], proof[position], *proof[position + 1 :]]
    other = draw.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    if proof[other] == proof[position]:
        return None
    swapped = list(proof)
    swapped[position], swapped[other] = swapped[other], swapped[position]
    return swapped


# --- preconditions -----------------------------------------------------------------------------

H = leaf_hash(b"x")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: verify_inclusion(H, 0, 0, [], H), PreconditionError),
        (lambda: verify_inclusion(H, 1, 1, [], H), PreconditionError),
        (lambda: verify_inclusion(H, -1, 4, [H, H], H), PreconditionError),
        (lambda: verify_inclusion(H[:31], 0, 1, [], H), PreconditionError),
        (lambda: verify_inclusion(H, 0, 1, [], H + b"!"), PreconditionError),
        (lambda: verify_inclusion(H, 0, 2, [b"short"], H), PreconditionError),
        (lambda: verify_inclusion(H, 0, 2, [], H), ProofLengthError),
        (lambda: verify_inclusion(H, 0, 1, [H], H), ProofLengthError),
        (lambda: verify_consistency(2, 1, [], H, H), PreconditionError),
        (lambda: verify_consistency(-1, 1, [], H, H), PreconditionError),
        (lambda: verify_consistency(1, 1, [], H, EMPTY_ROOT), RootMismatchError),
        (lambda: verify_consistency(1, 1, [H], H, H), ProofLengthError),
        (lambda: verify_consistency(0, 5, [], H, H), RootMismatchError),
        (lambda: verify_consistency(0, 5, [H], EMPTY_ROOT, H), ProofLengthError),
        (lambda: verify_consistency(1, 2, [], H, H), ProofLengthError),
        (lambda: verify_consistency(1, 2, [H], b"", H), PreconditionError),
        (lambda: inclusion_proof(3, [H, H, H]), PreconditionError),
        (lambda: consistency_proof(4, [H, H, H]), PreconditionError),
        (lambda: root([H, b"not a hash"]), PreconditionError),
        (lambda: range_nodes(1, 3), PreconditionError),
        (lambda: range_nodes(2, 2), PreconditionError),
    ],
)
def test_bad_inputs_raise_value_errors(call: Callable[[], object], error: type[ProofError]) -> None:
    with pytest.raises(error) as raised:
        call()
    assert isinstance(raised.value, ValueError)


def test_errors_carry_expected_and_computed_values() -> None:
    hashes = [leaf_hash(d) for d in data(5)]
    proof = inclusion_proof(2, hashes)
    with pytest.raises(RootMismatchError) as mismatch:
        verify_inclusion(hashes[3], 2, 5, proof, root(hashes))
    assert mismatch.value.expected == root(hashes)
    assert mismatch.value.computed == root_from_inclusion_proof(hashes[3], 2, 5, proof)
    with pytest.raises(ProofLengthError) as length:
        verify_inclusion(hashes[2], 2, 5, proof[:-1], root(hashes))
    assert (length.value.expected, length.value.computed) == (len(proof), len(proof) - 1)


def test_empty_tree_is_consistent_with_every_tree_and_has_the_empty_root() -> None:
    hashes = [leaf_hash(d) for d in data(3)]
    assert root([]) == EMPTY_ROOT == hashlib.sha256().digest()
    assert consistency_proof(0, hashes) == []
    verify_consistency(0, 3, [], EMPTY_ROOT, root(hashes))
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
