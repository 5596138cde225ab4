"""Witnesses and the log's HTTP API, over real servers on loopback, driven by the real `veilwatch` CLI.

A log's operator could show different histories to different people (a split view) or roll the
log back. Each server here is the real log routes behind the real auth middleware; forks and
rollbacks are made the way an operator with the signing key could: from copies of the database.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import error_lines, free_port, run_cli
from tests.helpers import serving as serving_app
from veilwatch.audit.client import LogClient
from veilwatch.audit.log import AuditLog
from veilwatch.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from veilwatch.audit.note import Cosigner, Note, Verifier, open_checkpoint
from veilwatch.audit.witness import STATE_FILE
from veilwatch.errors import AuditError
from veilwatch.server.auth import AuthMiddleware
from veilwatch.server.routes.log import MAX_PAGE, log_routes
from veilwatch.storage.db import Database

ORIGIN = "witness-test.example/audit"


@contextmanager
def serving(log: AuditLog, witnesses: list[str]) -> Iterator[str]:
    """The log's routes behind the real auth middleware (no sessions exist), on loopback."""
    app = FastAPI()
    app.router.routes.extend(log_routes(log, witnesses).routes)
    app.add_middleware(AuthMiddleware, routes=app.router.routes, lookup=lambda token: None, tokens={})
    with serving_app(app) as base:
        yield base


@contextmanager
def opened(folder: Path, keys: Path) -> Iterator[AuditLog]:
    with Database.open(folder / "veilwatch.sqlite3") as db:
        yield AuditLog.open(db, keys, ORIGIN, checkpoint_interval_s=0)


def fork(source: Path, target: Path) -> None:
    """A copy of a log's database: what an operator needs to show a second history."""
    target.mkdir(parents=True)
    src, dst = sqlite3.connect(source / "veilwatch.sqlite3"), sqlite3.connect(target / "veilwatch.sqlite3")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def entries(prefix: str, count: int) -> list[bytes]:
    return [f'{{"kind":"{prefix}","n":{i}}}'.encode() for i in range(count)]


@pytest.fixture
def witness(tmp_path: Path) -> tuple[Path, str]:
    """A witness made by the CLI: its state folder and verifier key."""
    state = tmp_path / "witness"
    made = run_cli("witness", "init", "--state", state, "--name", "witness.test/w1")
    assert made.returncode == 0, made.stderr.decode()
    vkey = made.stdout.decode().strip()
    assert Verifier.parse(vkey).name == "witness.test/w1"
    again = run_cli("witness", "init", "--state", state)
    assert again.returncode == 0 and again.stdout.decode().splitlines()[0] == vkey  # the key is kept
    return state, vkey


def test_witness_cosigns_a_growing_log_and_everyone_can_verify(tmp_path: Path, witness: tuple[Path, str]) -> None:
    state, witness_key = witness
    data, keys = tmp_path / "log", tmp_path / "keys"
    data.mkdir()
    with opened(data, keys) as log, serving(log, [witness_key]) as url:
        log.append_many(entries("view.start", 10))
        first = run_cli("witness", "cosign", "--server", url, "--log-key", log.verifier_key, "--state", state)
        assert first.returncode == 0, first.stderr.decode()
        assert "at size 10 (first sight)" in first.stdout.decode()
        published = httpx.get(f"{url}/api/log/checkpoint").text
        signed = open_checkpoint(published, log.verifier, [Verifier.parse(witness_key)])
        assert signed.checkpoint.size == 10 and [c.witness for c in signed.cosignatures] == ["witness.test/w1"]

        log.append_many(entries("ptz.move", 7))
        second = run_cli("witness", "cosign", "--server", url, "--log-key", log.verifier_key, "--state", state)
        assert second.returncode == 0, second.stderr.decode()
        assert "at size 17 (extends size 10)" in second.stdout.decode()

        saved = tmp_path / "saved.note"
        check = run_cli(
            "audit", "verify", "--server", url, "--key", log.verifier_key,
            "--witness", witness_key, "--save", saved,
        )  # fmt: skip
        out = check.stdout.decode()
        assert check.returncode == 0, out + check.stderr.decode()
        assert "size 17" in out and "witness.test/w1" in out and "OK" in out
        assert open_checkpoint(saved.read_text(), log.verifier).checkpoint.size == 17

        log.append_many(entries("login", 5))
        later = run_cli("audit", "verify", "--server", url, "--key", log.verifier_key, "--checkpoint", saved)
        assert later.returncode == 0, later.stdout.decode() + later.stderr.decode()
        assert "saved        size 17" in later.stdout.decode()


def test_the_http_api_serves_verifiable_entries_and_proofs(tmp_path: Path) -> None:
    with opened(tmp_path, tmp_path / "keys") as log, serving(log, []) as url, LogClient(url) as client:
        log.append_many(entries("playback", 1500))
        note = client.checkpoint()
        checkpoint = open_checkpoint(note, log.verifier).checkpoint
        assert checkpoint.size == 1500
        page, hashes = client.entries(0, MAX_PAGE)
        assert len(page) == MAX_PAGE and hashes == [leaf_hash(e) for e in page]
        verify_inclusion(leaf_hash(page[123]), 123, 1500, client.inclusion(123, 1500), checkpoint.root)
        verify_consistency(1000, 1500, client.consistency(1000, 1500), log.root_at(1000), checkpoint.root)
        for path in (
            "/api/log/entries?start=0&end=1001",
            "/api/log/entries?start=5&end=2",
            "/api/log/entries?start=-1",
            "/api/log/proof/inclusion?index=1500&size=1500",
            "/api/log/proof/consistency?first=10&second=1501",
            "/api/log/proof/consistency?first=x&second=1",
        ):
            response = httpx.get(url + path)
            assert response.status_code in (400, 422), (path, response.status_code)
        export = client.export()
        assert len(export.entries) == 1500 and export.checkpoint == note


def test_cosignature_posts_are_checked(tmp_path: Path) -> None:
    witness, stranger = Cosigner.generate("witness.test/w2"), Cosigner.generate("stranger.test/w")
    with opened(tmp_path, tmp_path / "keys") as log, serving(log, [witness.verifier.vkey]) as url:
        log.append_many(entries("export", 3))
        note = httpx.get(f"{url}/api/log/checkpoint").text
        text = Note.parse(note).text

        def post(body: str, **headers: str) -> httpx.Response:
            return httpx.post(f"{url}/api/log/cosignature", content=body.encode(), headers=headers)

        good = note + witness.cosign(text, int(time.time())).line
        assert post(good, Origin="https://evil.example").status_code == 403  # a page elsewhere cannot post
        assert post(note + stranger.cosign(text, 1).line).status_code == 400
        assert post(note).status_code == 400
        assert post("garbage").status_code == 400
        assert post(good + "x" * 20_000).status_code == 413
        assert httpx.post(f"{url}/api/log/cosignature", content=b"\xff\xfe").status_code == 400
        accepted = post(good)  # a witness program sends no Origin
        assert accepted.status_code == 200 and accepted.json() == {"accepted": ["witness.test/w2"]}
        assert httpx.get(f"{url}/api/log/checkpoint").text == good


def test_a_rollback_is_caught_and_the_witness_state_is_kept(tmp_path: Path, witness: tuple[Path, str]) -> None:
    state, witness_key = witness
    honest, keys = tmp_path / "honest", tmp_path / "keys"
    honest.mkdir()
    with opened(honest, keys) as log:
        log.append_many(entries("view.start", 10))
        log.checkpoint()
        fork(honest, tmp_path / "old")  # a copy at size 10, kept by the operator
        log.append_many(entries("view.stop", 5))
        with serving(log, [witness_key]) as url:
            result = run_cli("witness", "cosign", "--server", url, "--log-key", log.verifier_key, "--state", state)
            assert result.returncode == 0, result.stderr.decode()
        vkey = log.verifier_key
    before = (state / STATE_FILE).read_bytes()
    with opened(tmp_path / "old", keys) as old, serving(old, [witness_key]) as url:
        rolled_back = run_cli("witness", "cosign", "--server", url, "--log-key", vkey, "--state", state)
        assert rolled_back.returncode == 8
        assert error_lines(rolled_back.stderr) == [
            "veilwatch: error: rollback: the log shows 10 entries, but this witness cosigned 15"
        ]
    assert (state / STATE_FILE).read_bytes() == before


def test_a_split_view_is_caught_by_the_witness(tmp_path: Path, witness: tuple[Path, str]) -> None:
    state, witness_key = witness
    honest, keys = tmp_path / "honest", tmp_path / "keys"
    honest.mkdir()
    with opened(honest, keys) as log:
        log.append_many(entries("view.start", 10))
        log.checkpoint()
        fork(honest, tmp_path / "fork")
        log.append_many(entries("honest", 5))
        with serving(log, [witness_key]) as url:
            assert (
                run_cli(
                    "witness", "cosign", "--server", url, "--log-key", log.verifier_key, "--state", state
                ).returncode
                == 0
            )
        vkey = log.verifier_key
    before = (state / STATE_FILE).read_bytes()
    with opened(tmp_path / "fork", keys) as other:
        other.append_many(entries("hidden", 5))  # the same size, another history
        with serving(other, [witness_key]) as url:
            same_size = run_cli("witness", "cosign", "--server", url, "--log-key", vkey, "--state", state)
            assert same_size.returncode == 8
            assert "split view: two different trees of size 15" in same_size.stderr.decode()
            other.append_many(entries("hidden", 3))  # grown past it: the consistency proof cannot hold
            grown = run_cli("witness", "cosign", "--server", url, "--log-key", vkey, "--state", state)
            assert grown.returncode == 8
            assert "split view: the tree of 18 does not extend the tree of 15" in grown.stderr.decode()
            # And a user who saved the honest checkpoint sees it too.
            (tmp_path / "honest.note").write_text(_honest_note(honest, keys))
            check = run_cli("audit", "verify", "--server", url, "--key", vkey, "--checkpoint", tmp_path / "honest.note")
            assert check.returncode == 8
            assert (
                "split view: the log signed the latest checkpoint (size 18), "
                "which does not extend the checkpoint you saved (size 15)"
            ) in check.stdout.decode()
    assert (state / STATE_FILE).read_bytes() == before


def _honest_note(folder: Path, keys: Path) -> str:
    with opened(folder, keys) as log:
        return log.checkpoint()


def test_export_and_offline_verify_by_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with opened(data, data / "keys") as log:
        log.append_many(entries("login", 25))
        saved = log.checkpoint()
        log.append_many(entries("logout", 9))
        vkey = log.verifier_key
    (tmp_path / "saved.note").write_text(saved)
    export = tmp_path / "log.json"
    made = run_cli("audit", "export", "--data-dir", data, "--output", export)
    assert made.returncode == 0, made.stderr.decode()
    assert "exported 34 entries" in made.stdout.decode()
    ok = run_cli("audit", "verify", "--export", export, "--key", vkey, "--checkpoint", tmp_path / "saved.note")
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()

    tampered = export.read_text().replace(
        base64.b64encode(entries("logout", 9)[4]).decode(), base64.b64encode(b"{}").decode()
    )
    (tmp_path / "bad.json").write_text(tampered)
    bad = run_cli("audit", "verify", "--export", tmp_path / "bad.json", "--key", vkey)
    assert bad.returncode == 8
    assert "FIRST BAD    index 29" in bad.stdout.decode()
    assert error_lines(bad.stderr) == [
        f"veilwatch: error: {ORIGIN}: verification failed: first bad index 29; "
        "entry 29 is not the entry the latest checkpoint (size 34) signed: changed, moved or inserted"
    ]
    for args, code in (
        (("audit", "verify", "--export", export, "--key", "not+a+key"), 2),
        (("audit", "verify", "--key", vkey), 2),
        (("audit", "verify", "--export", tmp_path / "missing.json", "--key", vkey), 2),
        (("audit", "export", "--data-dir", tmp_path / "nothing", "--output", tmp_path / "x.json"), 2),
        (("witness", "cosign", "--server", "ftp://x", "--log-key", vkey, "--state", tmp_path / "w"), 7),
    ):
        result = run_cli(*args)
        assert result.returncode == code, (args, result.stderr.decode())
        assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr.decode()


def test_an_unreachable_server_is_one_clear_error() -> None:
    with (
        pytest.raises(AuditError, match="cannot reach"),
        LogClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as c,
    ):
        c.checkpoint()
