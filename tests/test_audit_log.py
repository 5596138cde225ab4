"""The audit log on real SQLite: appends, proofs from stored subtrees, checkpoints, witnesses, and tampering.

The tampering campaign changes an export or the database the way an insider would (dropping the
append-only triggers first) and checks that verification catches every change and names the
first bad index. Its figures are printed for the release note (`pytest -s`).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from veilwatch.audit.log import KEY_FILE, AuditLog
from veilwatch.audit.merkle import (
    PreconditionError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from veilwatch.audit.note import Checkpoint, Cosigner, Note, Signer, open_checkpoint, sign_note
from veilwatch.audit.verify import ExportError, LogExport, VerifyResult, verify_log
from veilwatch.errors import AuditError, LogVerificationError
from veilwatch.storage.actions import ActionRecord
from veilwatch.storage.db import Database

ORIGIN = "test.veilwatch.example/audit"
TABLES = ("audit_leaves", "audit_nodes", "audit_checkpoints", "audit_cosignatures")


class Clock:
    """A hand-moved clock."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "data" / "veilwatch.sqlite3") as database:
        yield database


@pytest.fixture
def log(db: Database, tmp_path: Path, clock: Clock) -> AuditLog:
    return AuditLog.open(db, tmp_path / "data" / "keys", ORIGIN, checkpoint_interval_s=0, clock=clock)


def event(i: int) -> bytes:
    """A real action record's canonical bytes, as the server will append them."""
    record = ActionRecord(1_800_000_000 + i, "ada", "admin", "ptz.move", "hall", {"step": i})
    return record.to_canonical_json()


# --- appending and proving -----------------------------------------------------------------------


def test_appends_are_indexed_and_proofs_equal_the_pure_functions(log: AuditLog) -> None:
    first = [log.append(event(i)) for i in range(40)]
    rest = log.append_many([event(i) for i in range(40, 333)])
    assert first == list(range(40)) and rest == range(40, 333) and log.size() == 333
    entries = log.entries(0, 333)
    hashes = [leaf_hash(e) for e in entries]
    assert entries[7] == event(7) and log.leaf_hashes(0, 333) == hashes and log.leaf_hash_at(300) == hashes[300]
    for size in (1, 2, 3, 64, 100, 255, 256, 257, 333):
        assert log.root_at(size) == root(hashes[:size])
    for index, size in ((0, 1), (0, 333), (5, 6), (100, 257), (256, 257), (332, 333)):
        proof = log.inclusion(index, size)
        assert proof == inclusion_proof(index, hashes[:size])
        verify_inclusion(hashes[index], index, size, proof, root(hashes[:size]))
    for size1, size2 in ((1, 333), (40, 333), (64, 100), (256, 257), (333, 333), (0, 10)):
        proof = log.consistency(size1, size2)
        assert proof == consistency_proof(size1, hashes[:size2])
        verify_consistency(size1, size2, proof, root(hashes[:size1]), root(hashes[:size2]))


@pytest.mark.parametrize(
    "call",
    [
        lambda log: log.inclusion(10, 10),
        lambda log: log.inclusion(0, 11),
        lambda log: log.consistency(5, 4),
        lambda log: log.consistency(1, 11),
        lambda log: log.root_at(11),
        lambda log: log.entries(3, 12),
        lambda log: log.leaf_hash_at(10),
    ],
)
def test_out_of_range_requests_are_value_errors(log: AuditLog, call: Callable[[AuditLog], object]) -> None:
    log.append_many([event(i) for i in range(10)])
    with pytest.raises(PreconditionError):
        call(log)


def test_proofs_come_from_stored_subtrees_not_from_re_hashing(log: AuditLog, db: Database) -> None:
    """A proof reads O(log n) rows by primary key: never a scan, blind to entries it does not cover."""
    for start in range(0, 40_000, 5_000):
        log.append_many([b"entry %d" % i for i in range(start, start + 5_000)])
    signed_root = log.root_at(40_000)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    sqlalchemy.event.listen(sqlalchemy.Engine, "before_cursor_execute", capture)
    try:
        began = time.perf_counter()
        for index in range(0, 40_000, 997):
            log.inclusion(index, 40_000)
        log.consistency(12_345, 40_000)
        elapsed = (time.perf_counter() - began) / 42
    finally:
        sqlalchemy.event.remove(sqlalchemy.Engine, "before_cursor_execute", capture)
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms per proof"
    plans = sqlite3.connect(db.path)
    try:
        for statement, parameters in {(s, tuple(p)) for s, p in statements if "audit_nodes" in s}:
            plan = " ".join(row[3] for row in plans.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN audit_nodes" not in plan, (statement, plan)
    finally:
        plans.close()
    _attack(db, "UPDATE audit_leaves SET data = x'00' WHERE idx = 20000")  # proofs never read the entries
    verify_inclusion(leaf_hash(b"entry 7"), 7, 40_000, log.inclusion(7, 40_000), signed_root)
    assert log.root_at(40_000) == signed_root


def test_concurrent_appends_from_many_threads_all_land_once(log: AuditLog) -> None:
    indexes: list[int] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        for i in range(25):
            index = log.append(b"thread %d event %d" % (number, i))
            with lock:
                indexes.append(index)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(indexes) == list(range(200))
    entries = log.entries(0, 200)
    assert len(set(entries)) == 200
    assert log.root_at(200) == root([leaf_hash(e) for e in entries])


# --- keys ----------------------------------------------------------------------------------------


def test_the_signing_key_is_private_reused_and_bound_to_its_origin(db: Database, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = AuditLog.open(db, keys, ORIGIN)
    assert stat.S_IMODE((keys / KEY_FILE).stat().st_mode) == 0o600
    assert [p.name for p in keys.iterdir()] == [KEY_FILE]  # no temporary file left behind
    assert AuditLog.open(db, keys, ORIGIN).verifier_key == first.verifier_key
    with pytest.raises(AuditError, match="origin"):
        AuditLog.open(db, keys, "other.example/audit")
    os.chmod(keys / KEY_FILE, 0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        AuditLog.open(db, keys, ORIGIN)
    os.chmod(keys / KEY_FILE, 0o600)
    (keys / KEY_FILE).write_text("PRIVATE+KEY+garbage\n")
    with pytest.raises(AuditError, match="not a log signing key"):
        AuditLog.open(db, keys, ORIGIN)
    with pytest.raises(AuditError, match="invalid log origin"):
        AuditLog.open(db, tmp_path / "other-keys", "has a space")


# --- failures refuse the action ------------------------------------------------------------------


def test_append_on_a_closed_database_raises_audit_error(log: AuditLog, db: Database) -> None:
    log.append(b"before")
    db.close()
    with pytest.raises(AuditError, match="cannot append"):
        log.append(b"after")
    with pytest.raises(AuditError):
        log.size()


def test_append_while_the_database_is_locked_raises_audit_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    with Database.open(path, busy_timeout_s=0.2) as db:
        log = AuditLog.open(db, tmp_path / "keys", ORIGIN)
        log.append(b"one")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(AuditError, match="locked"):
                log.append(b"two")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert log.size() == 1
        assert log.append(b"two") == 1


def test_append_to_a_read_only_database_raises_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite3"
    with Database.open(path) as db:
        AuditLog.open(db, tmp_path / "keys", ORIGIN).append(b"one")
    with Database.open(path) as db:
        log = AuditLog.open(db, tmp_path / "keys", ORIGIN)
        # Switch the writer connection itself to read-only, as a read-only remount would.
        _attack(db, "PRAGMA query_only = ON", via_writer=True)
        with pytest.raises(AuditError, match=r"readonly|read-only|attempt to write"):
            log.append(b"two")


def test_entries_must_be_bytes_of_bounded_size(log: AuditLog) -> None:
    with pytest.raises(AuditError):
        log.append(b"x" * 70_000)
    with pytest.raises(AuditError):
        log.append("text")  # type: ignore[arg-type]
    assert log.size() == 0


def test_the_audit_tables_are_append_only(log: AuditLog, db: Database) -> None:
    log.append(b"one")
    log.checkpoint()
    for statement in (
        "UPDATE audit_leaves SET data = x'00'",
        "DELETE FROM audit_leaves",
        "UPDATE audit_nodes SET digest = zeroblob(32)",
        "DELETE FROM audit_nodes",
        "UPDATE audit_checkpoints SET size = 5",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(Exception, match="append-only"):  # sqlite3.IntegrityError, via SQLAlchemy
            _attack(db, statement, via_writer=True)


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_are_signed_when_due_and_all_kept(db: Database, tmp_path: Path, clock: Clock) -> None:
    log = AuditLog.open(db, tmp_path / "keys", ORIGIN, checkpoint_interval_s=60, clock=clock)
    empty = log.checkpoint()
    assert open_checkpoint(empty, log.verifier).checkpoint.size == 0
    log.append(b"one")
    assert log.checkpoint() == empty  # grew, but the interval has not passed
    clock.now += 61
    one = log.checkpoint()
    assert open_checkpoint(one, log.verifier).checkpoint.size == 1
    assert log.checkpoint() == one  # did not grow: nothing new to sign
    log.append(b"two")
    two = log.checkpoint(force=True)
    assert open_checkpoint(two, log.verifier).checkpoint.size == 2
    assert log.checkpoints() == [empty, one, two]
    sizes = [open_checkpoint(n, log.verifier).checkpoint for n in log.checkpoints()]
    for older, newer in itertools.pairwise(sizes):
        verify_consistency(older.size, newer.size, log.consistency(older.size, newer.size), older.root, newer.root)


def test_the_log_refuses_to_sign_a_tree_that_does_not_extend_its_last_checkpoint(log: AuditLog, db: Database) -> None:
    log.append_many([event(i) for i in range(20)])
    log.checkpoint()
    log.append(event(20))
    # The stored subtree over entries 0-15, which the new root is folded from.
    _attack(db, "UPDATE audit_nodes SET digest = zeroblob(32) WHERE level = 4 AND idx = 0")
    with pytest.raises(AuditError, match="no longer extends checkpoint 20"):
        log.checkpoint(force=True)
    assert len(log.checkpoints()) == 1


def test_the_log_refuses_to_sign_a_rolled_back_tree(log: AuditLog, db: Database) -> None:
    log.append_many([event(i) for i in range(20)])
    log.checkpoint()
    _attack(db, "DELETE FROM audit_nodes WHERE idx >= 18 AND level = 0")
    _attack(db, "DELETE FROM audit_leaves WHERE idx >= 18")
    with pytest.raises(AuditError, match="shrank from 20 to 18"):
        log.checkpoint(force=True)


def test_an_edited_stored_checkpoint_is_noticed(log: AuditLog, db: Database) -> None:
    log.append(b"one")
    log.checkpoint()
    log.append(b"two")
    _attack(db, "UPDATE audit_checkpoints SET note = replace(note, '\n1\n', '\n9\n')")
    with pytest.raises(AuditError, match="does not verify"):
        log.checkpoint(force=True)


# --- witnesses -----------------------------------------------------------------------------------


def test_cosignatures_are_accepted_only_from_configured_witnesses_on_own_checkpoints(
    log: AuditLog, tmp_path: Path
) -> None:
    witness, stranger = Cosigner.generate("witness.example/w1"), Cosigner.generate("stranger.example/w")
    keys = [witness.verifier.vkey]
    log.append_many([event(i) for i in range(5)])
    note = log.checkpoint()
    text = Note.parse(note).text
    assert log.add_cosignature(note + witness.cosign(text, 1_800_000_100).line, keys) == ("witness.example/w1",)
    later = witness.cosign(text, 1_800_000_200).line
    log.add_cosignature(note + later, keys)
    log.add_cosignature(note + later, keys)  # a repeat changes nothing
    published = log.cosigned_checkpoint()
    assert published == note + later  # the newest cosignature of each witness
    signed = open_checkpoint(published, log.verifier, [witness.verifier])
    assert [c.timestamp for c in signed.cosignatures] == [1_800_000_200]

    refusals = {
        "a stranger's": (note + stranger.cosign(text, 1).line, keys),
        "with no witnesses configured": (note + witness.cosign(text, 1).line, []),
        "altered": (note + _corrupt(witness.cosign(text, 1).line), keys),
        "not signed by the log": (sign_note(text, witness, timestamp=1), keys),
    }
    for posted, accepted in refusals.values():
        with pytest.raises(LogVerificationError, match="cosignature refused"):
            log.add_cosignature(posted, accepted)
    # A checkpoint signed with the log's own key but never stored (a forged size) is refused too.
    signer = _signer(tmp_path)
    forged = Checkpoint(ORIGIN, 99, root([leaf_hash(b"x")])).text
    with pytest.raises(LogVerificationError, match="never signed"):
        log.add_cosignature(sign_note(forged, signer) + witness.cosign(forged, 1).line, keys)


def _signer(tmp_path: Path) -> Signer:
    return Signer.parse((tmp_path / "data" / "keys" / KEY_FILE).read_text())


def _corrupt(line: str) -> str:
    """A signature line with the last bit of its signature flipped."""
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


# --- export and offline verification -------------------------------------------------------------


def test_an_untouched_export_verifies_against_a_saved_checkpoint(log: AuditLog, clock: Clock) -> None:
    log.append_many([event(i) for i in range(30)])
    saved = log.checkpoint()
    log.append_many([event(i) for i in range(30, 77)])
    export = LogExport.from_json(log.export())
    assert len(export.entries) == 77 and export.hashes is not None and len(export.checkpoints) == 2
    result = verify_log(export, log.verifier_key, saved_checkpoint=saved)
    assert result.ok and result.size == 77 and result.saved_size == 30 and result.verified_prefix == 77
    assert result.root == log.root_at(77) and result.first_bad_index is None
    with pytest.raises(ExportError):
        verify_log(LogExport.from_json(log.export(10, 30)), log.verifier_key)
    partial = LogExport.from_json(log.export(0, 30))  # the checkpoint of size 30 covers it
    assert verify_log(partial, log.verifier_key).ok


def test_a_rollback_against_the_saved_checkpoint_fails(log: AuditLog) -> None:
    log.append_many([event(i) for i in range(30)])
    old = LogExport.from_json(log.export())
    log.append_many([event(i) for i in range(30, 40)])
    saved = log.checkpoint(force=True)
    result = verify_log(old, log.verifier_key, saved_checkpoint=saved)
    assert not result.ok and result.first_bad_index == 30
    assert any("rollback" in p for p in result.problems)


def test_a_checkpoint_from_another_key_is_not_trusted(log: AuditLog, db: Database, tmp_path: Path) -> None:
    log.append_many([event(i) for i in range(3)])
    export = LogExport.from_json(log.export())
    with pytest.raises(ValueError):
        verify_log(export, "not a key")
    impostor = AuditLog.open(db, tmp_path / "impostor-keys", ORIGIN)  # same origin, another key
    result = verify_log(export, impostor.verifier_key)
    assert not result.ok and "does not verify" in result.problems[0]


def test_a_forked_history_is_a_split_view_to_whoever_saved_the_honest_checkpoint(
    log: AuditLog, db: Database, tmp_path: Path
) -> None:
    log.append_many([event(i) for i in range(40)])
    log.checkpoint()
    _copy_database(db, tmp_path / "fork.sqlite3")  # the operator keeps a copy, and the key
    log.append_many([event(i) for i in range(40, 60)])
    honest = log.checkpoint()
    with Database.open(tmp_path / "fork.sqlite3") as forked:
        fork = AuditLog.open(forked, tmp_path / "data" / "keys", ORIGIN, checkpoint_interval_s=0)
        fork.append_many([b"hidden %d" % i for i in range(25)])
        export = LogExport.from_json(fork.export())
    assert verify_log(export, log.verifier_key).ok  # alone, the fork looks fine
    result = verify_log(export, log.verifier_key, saved_checkpoint=honest)
    assert not result.ok and result.first_bad_index is None and result.verified_prefix == 40
    assert result.problems[0] == (
        "split view: the log signed the latest checkpoint (size 65), which does not extend "
        "the checkpoint you saved (size 60)"
    )
    assert "between index 40 and 59" in result.problems[1]


# --- the tampering campaign ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tampering:
    kind: str
    expected: int | None  # the first bad index; None when no entry is wrong (e.g. a checkpoint edited)


def _export_tamperings(entries: list[bytes], rng: random.Random) -> Iterator[tuple[Tampering, list[bytes]]]:
    n = len(entries)
    for _ in range(60):
        i = rng.randrange(n)
        flipped = bytearray(entries[i])
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        yield Tampering("flip a byte", i), [*entries[:i], bytes(flipped), *entries[i + 1 :]]
        i = rng.randrange(n)
        yield Tampering("delete", i), entries[:i] + entries[i + 1 :]
        i, j = sorted(rng.sample(range(n), 2))
        swapped = list(entries)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        yield Tampering("reorder", i), swapped
        i = rng.randrange(n + 1)
        yield Tampering("insert", i), [*entries[:i], event(10_000 + i), *entries[i:]]
        t = rng.randrange(n)
        yield Tampering("truncate", t), entries[:t]


def test_every_random_tampering_of_an_export_is_caught_at_its_first_bad_index(log: AuditLog) -> None:
    saved = _populate(log)
    export = LogExport.from_json(log.export())
    tried, exact = 0, 0
    for tampering, entries in _export_tamperings(list(export.entries), random.Random(4)):
        result = verify_log(replace(export, entries=tuple(entries)), log.verifier_key, saved_checkpoint=saved)
        tried += 1
        assert not result.ok, tampering
        assert result.first_bad_index == tampering.expected, (tampering, result.problems)
        exact += result.exact
    print(f"\nexport tamperings: {tried} tried, {tried} detected, {exact} with the exact first bad index")
    assert tried == exact == 300


def test_every_random_tampering_of_the_database_is_caught_at_its_first_bad_index(
    log: AuditLog, db: Database, tmp_path: Path
) -> None:
    saved = _populate(log)
    n = log.size()
    pristine = tmp_path / "pristine.sqlite3"
    _copy_database(db, pristine)
    rng = random.Random(11)
    tried = detected = exact = checkpoints = 0
    for _ in range(8):
        for tampering, statements in _database_tamperings(n, rng):
            result = _verify_copy(pristine, tmp_path, statements, log.verifier_key, saved)
            tried += 1
            detected += not result.ok
            assert not result.ok, tampering
            assert result.first_bad_index == tampering.expected, (tampering, result.problems)
            exact += result.exact
            checkpoints += tampering.expected is None and "does not verify" in result.problems[0]
    print(
        f"\ndatabase tamperings: {tried} tried, {detected} detected: {exact} entry or hash rows at their exact "
        f"first bad index, {checkpoints} checkpoint rows refused by signature"
    )
    assert tried == detected == exact + checkpoints == 64


def _database_tamperings(n: int, rng: random.Random) -> Iterator[tuple[Tampering, list[str]]]:
    i = rng.randrange(n)
    yield Tampering("edit an entry row", i), [f"UPDATE audit_leaves SET data = data || x'20' WHERE idx = {i}"]
    i = rng.randrange(n)
    yield Tampering("delete an entry row", i), [f"DELETE FROM audit_leaves WHERE idx = {i}"]
    i, j = sorted(rng.sample(range(n), 2))
    yield (
        Tampering("swap two entry rows", i),
        [
            f"UPDATE audit_leaves SET idx = 1000000 WHERE idx = {i}",
            f"UPDATE audit_leaves SET idx = {i} WHERE idx = {j}",
            f"UPDATE audit_leaves SET idx = {j} WHERE idx = 1000000",
        ],
    )
    i = rng.randrange(n)
    yield (
        Tampering("insert an entry row", i),
        [
            f"UPDATE audit_leaves SET idx = idx + 1000001 WHERE idx >= {i}",
            "UPDATE audit_leaves SET idx = idx - 1000000 WHERE idx >= 1000000",
            f"INSERT INTO audit_leaves (idx, data, appended_at) VALUES ({i}, x'7b7d', 0)",
        ],
    )
    t = rng.randrange(1, n)
    yield Tampering("truncate the entries", t), [f"DELETE FROM audit_leaves WHERE idx >= {t}"]
    i = rng.randrange(n)
    yield (
        Tampering("edit a stored leaf hash", i),
        [f"UPDATE audit_nodes SET digest = zeroblob(32) WHERE level = 0 AND idx = {i}"],
    )
    i = rng.randrange(n - 1)  # deleting the last one shrinks the tree: the log itself refuses to go on
    yield Tampering("delete a stored leaf hash", i), [f"DELETE FROM audit_nodes WHERE level = 0 AND idx = {i}"]
    yield (
        Tampering("edit a stored checkpoint", None),
        ["UPDATE audit_checkpoints SET note = replace(note, '=\n\n', 'A\n\n') WHERE id = 2"],
    )


def _populate(log: AuditLog) -> str:
    """137 entries, a checkpoint every 10; the one of size 40 is the one the user saved."""
    saved = ""
    for start in range(0, 137, 10):
        log.append_many([event(i) for i in range(start, min(start + 10, 137))])
        note = log.checkpoint(force=True)
        saved = note if start == 30 else saved
    return saved


def _verify_copy(pristine: Path, tmp_path: Path, statements: list[str], vkey: str, saved: str) -> VerifyResult:
    copy = tmp_path / "tampered.sqlite3"
    for leftover in tmp_path.glob("tampered.sqlite3*"):
        leftover.unlink()
    shutil.copyfile(pristine, copy)
    with sqlite3.connect(copy) as attacker:
        for table in TABLES:
            for action in ("update", "delete"):
                attacker.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        for statement in statements:
            attacker.execute(statement)
    with Database.open(copy) as db:
        tampered = AuditLog.open(db, tmp_path / "data" / "keys", ORIGIN)
        export = LogExport.from_json(tampered.export())
    return verify_log(export, vkey, saved_checkpoint=saved)


def test_a_consistent_rewrite_is_caught_and_bounded_by_the_checkpoints(
    log: AuditLog, db: Database, tmp_path: Path
) -> None:
    """An insider rewrites an entry *and* its stored hash: no second copy to compare, so the
    signed checkpoints bound where it happened."""
    saved = _populate(log)
    pristine = tmp_path / "pristine.sqlite3"
    _copy_database(db, pristine)
    result = _verify_copy(
        pristine,
        tmp_path,
        [
            "UPDATE audit_leaves SET data = x'00' WHERE idx = 73",
            f"UPDATE audit_nodes SET digest = x'{leaf_hash(bytes([0])).hex()}' WHERE level = 0 AND idx = 73",
        ],
        log.verifier_key,
        saved,
    )
    assert not result.ok
    assert result.verified_prefix == 70 and result.first_bad_index is None


def _copy_database(db: Database, target: Path) -> None:
    source = sqlite3.connect(db.path)
    destination = sqlite3.connect(target)
    try:
        source.backup(destination)
    finally:
        source.close()
        destination.close()


def _attack(db: Database, statement: str, *, via_writer: bool = False) -> None:
    """Change the database as an insider would: around the append-only triggers."""
    if via_writer:
        db.write(lambda session: session.connection().exec_driver_sql(statement))
        return
    connection = sqlite3.connect(db.path, isolation_level=None)
    try:
        for table in TABLES:
            for action in ("update", "delete"):
                connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        connection.execute(statement)
    finally:
        connection.close()


def test_checkpoint_roots_are_base64_of_the_tree_root(log: AuditLog) -> None:
    log.append_many([event(i) for i in range(9)])
    text = Note.parse(log.checkpoint()).text
    assert text == f"{ORIGIN}\n9\n{base64.b64encode(log.root_at(9)).decode()}\n"
