"""C2SP tlog-witness on real SQLite and real servers on loopback: the log asks, witnesses cosign or refuse.

Rollbacks and split views are made the way an operator holding the log's key could: from a copy
of the database that is grown differently and signed with the same key.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tests.helpers import cli_env, free_port, run_cli, serving
from tests.test_witness import fork
from veilwatch.audit.log import AuditLog
from veilwatch.audit.note import Checkpoint, Cosigner, Note, Verifier, open_checkpoint
from veilwatch.audit.tlogwitness import (
    SIZE_TYPE,
    WitnessEndpoint,
    Witnessing,
    WitnessService,
    add_checkpoint_body,
    collect_cosignatures,
    request_cosignature,
)
from veilwatch.audit.witness import create_witness
from veilwatch.config import AuditConfig
from veilwatch.errors import AuditError
from veilwatch.server.witness_app import witness_app
from veilwatch.storage.db import Database

ORIGIN = "tlog-witness-test.example/log"


def entries(prefix: str, count: int, start: int = 0) -> list[bytes]:
    return [f'{{"kind":"{prefix}","n":{i}}}'.encode() for i in range(start, start + count)]


@contextmanager
def opened(folder: Path, keys: Path, quorum: int = 0) -> Iterator[AuditLog]:
    with Database.open(folder / "veilwatch.sqlite3") as db:
        yield AuditLog.open(db, keys, ORIGIN, checkpoint_interval_s=0, tiles_dir=folder / "log", witness_quorum=quorum)


@contextmanager
def witness(tmp_path: Path, name: str, log_key: str) -> Iterator[tuple[WitnessEndpoint, Path]]:
    """A witness made on disk, serving add-checkpoint on loopback; its endpoint (as the log sees it) and state."""
    state = tmp_path / name
    cosigner, _ = create_witness(state, f"witness.test/{name}")
    with serving(witness_app(WitnessService(state, [Verifier.parse(log_key)]))) as base:
        yield WitnessEndpoint(cosigner.verifier, base), state


def post(endpoint: WitnessEndpoint, body: str) -> httpx.Response:
    return httpx.post(f"{endpoint.url}/add-checkpoint", content=body.encode())


def test_a_growing_log_gets_cosigned_and_published(tmp_path: Path) -> None:
    with opened(tmp_path / "a", tmp_path / "keys") as log, witness(tmp_path, "w1", log.verifier_key) as (w1, state):
        log.append_many(entries("a", 10))
        assert collect_cosignatures(log, [w1]) == (["witness.test/w1"], [])
        log.append_many(entries("a", 300, 10))
        assert collect_cosignatures(log, [w1]) == (["witness.test/w1"], [])  # old 10 + a consistency proof
        published = log.published_checkpoint()
        assert published is not None and published == (tmp_path / "a/log/checkpoint").read_text()
        signed = open_checkpoint(published, log.verifier, [w1.key])
        assert signed.checkpoint.size == 310 and [c.witness for c in signed.cosignatures] == ["witness.test/w1"]
        again = WitnessService(state, [log.verifier])  # the state was persisted before the answer
        assert again.state.logs[log.verifier_key].size == 310


def test_rollback_and_split_view_are_refused_with_the_spec_codes(tmp_path: Path) -> None:
    with opened(tmp_path / "a", tmp_path / "keys") as log, witness(tmp_path, "w1", log.verifier_key) as (w1, _):
        log.append_many(entries("a", 5))
        small = log.checkpoint()
        log.append_many(entries("a", 5, 5))
        request_cosignature(w1, log.checkpoint(), lambda old: log.consistency(old, 10))
        stale = post(w1, add_checkpoint_body(0, [], small))  # the log pretends it never showed 10
        assert stale.status_code == 409 and stale.text == "10\n"
        assert stale.headers["content-type"].startswith(SIZE_TYPE)
        rollback = post(w1, add_checkpoint_body(10, [], small))  # old size above the checkpoint's
        assert rollback.status_code == 400
        fork(tmp_path / "a", tmp_path / "b")
        log.append_many(entries("a", 3, 10))
        honest = log.checkpoint(force=True)
        assert post(w1, add_checkpoint_body(10, log.consistency(10, 13), honest)).status_code == 200
        with opened(tmp_path / "b", tmp_path / "keys") as other:  # same key, another history
            other.append_many(entries("fork", 3, 10))
            same_size = post(w1, add_checkpoint_body(13, [], other.checkpoint(force=True)))
            assert same_size.status_code == 409  # a second root for size 13
            other.append_many(entries("fork", 1, 13))
            grown = post(w1, add_checkpoint_body(13, other.consistency(13, 14), other.checkpoint(force=True)))
            assert grown.status_code == 422  # its proof does not start from the root the witness cosigned
        assert WitnessService(tmp_path / "w1", [log.verifier]).state.logs[log.verifier_key].root == (
            Checkpoint.parse(Note.parse(honest).text).root
        )


def test_malformed_unknown_and_forged_requests(tmp_path: Path) -> None:
    with opened(tmp_path / "a", tmp_path / "keys") as log, witness(tmp_path, "w1", log.verifier_key) as (w1, _):
        log.append_many(entries("a", 3))
        note = log.checkpoint()
        with opened(tmp_path / "x", tmp_path / "other-keys") as stranger:
            forged = stranger.checkpoint(force=True)  # same origin, another key
        assert post(w1, add_checkpoint_body(0, [], forged)).status_code == 403
        unknown = note.replace(ORIGIN, "elsewhere.example/log", 1)
        assert post(w1, add_checkpoint_body(0, [], unknown)).status_code == 404
        assert post(w1, "old 01\n\n" + note).status_code == 400
        assert post(w1, "old 0\n" + note).status_code == 400
        assert post(w1, "old 0\n" + "AAAA\n" * 64 + "\n" + note).status_code == 400
        assert post(w1, add_checkpoint_body(0, [b"x" * 32], note)).status_code == 422  # no proof from 0
        with pytest.raises(AuditError, match="HTTP 403"):
            request_cosignature(w1, forged, lambda old: [])


def test_a_quorum_of_witnesses_before_a_checkpoint_is_published(tmp_path: Path) -> None:
    with (
        opened(tmp_path / "a", tmp_path / "keys", quorum=2) as log,
        witness(tmp_path, "w1", log.verifier_key) as (w1, _),
        witness(tmp_path, "w2", log.verifier_key) as (w2, _),
    ):
        log.append_many(entries("a", 7))
        assert log.published_checkpoint() is None and not (tmp_path / "a/log/checkpoint").exists()
        assert collect_cosignatures(log, [w1]) == (["witness.test/w1"], [])
        assert log.published_checkpoint() is None  # 1 of 2
        down = WitnessEndpoint(w2.key, "http://127.0.0.1:9")  # nothing listens there
        accepted, failures = collect_cosignatures(log, [w1, down])
        assert accepted == ["witness.test/w1"] and "cannot reach witness witness.test/w2" in failures[0]
        assert collect_cosignatures(log, [w1, w2]) == (["witness.test/w1", "witness.test/w2"], [])
        published = log.published_checkpoint()
        assert published is not None and published == (tmp_path / "a/log/checkpoint").read_text()
        signed = open_checkpoint(published, log.verifier, [w1.key, w2.key])
        assert signed.checkpoint.size == 7 and len(signed.cosignatures) == 2
        log.append_many(entries("a", 1, 7))
        log.checkpoint(force=True)
        assert log.published_checkpoint() == published  # the newer one is not cosigned yet


def test_the_cli_witness_and_the_log_s_witnessing_thread(tmp_path: Path) -> None:
    made = run_cli("witness", "init", "--state", tmp_path / "w", "--name", "witness.test/cli")
    assert made.returncode == 0, made.stderr.decode()
    key = Verifier.parse(made.stdout.decode().strip())
    port = free_port()
    with opened(tmp_path / "a", tmp_path / "keys", quorum=1) as log:
        command = [sys.executable, "-m", "veilwatch.cli.app", "witness", "serve", "--state", str(tmp_path / "w")]
        command += ["--log-key", log.verifier_key, "--port", str(port)]
        with subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
            try:
                wait_for_port(port)
                log.append_many(entries("a", 12))
                witnessing = Witnessing(log, [WitnessEndpoint(key, f"http://127.0.0.1:{port}")], interval_s=1)
                witnessing.start()
                published = wait_for(log.published_checkpoint)
                witnessing.stop()
            finally:
                server.terminate()
    signed = open_checkpoint(published, log.verifier, [key])
    assert signed.checkpoint.size == 12 and [c.witness for c in signed.cosignatures] == ["witness.test/cli"]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def wait_for(get: Callable[[], str | None]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (value := get()) is not None:
            return value
        time.sleep(0.05)
    raise AssertionError("never came")


def test_witness_settings_are_checked() -> None:
    vkey = Cosigner.generate("witness.test/w1").verifier.vkey
    AuditConfig(witnesses=[vkey], witness_quorum=1, witness_urls={"witness.test/w1": "https://w1.example/"})
    with pytest.raises(ValidationError, match="needs at least that many witnesses"):
        AuditConfig(witnesses=[vkey], witness_quorum=2)
    with pytest.raises(ValidationError, match="must name a configured witness"):
        AuditConfig(witnesses=[vkey], witness_urls={"witness.test/w2": "https://w2.example/"})
