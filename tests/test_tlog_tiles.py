"""The log as C2SP tlog-tiles, on real SQLite and a real server on loopback, checked by an independent client.

The independent client is `tests/tlogverify`, a Go program on golang.org/x/mod/sumdb/tlog and
sumdb/note (Debian's golang-golang-x-mod-dev, built offline): it checks the checkpoint's
signature, the inclusion of every entry and the consistency of older checkpoints with the latest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import run_cli, serving
from veilwatch.audit.log import AuditLog
from veilwatch.audit.merkle import leaf_hash, root
from veilwatch.audit.tiles import (
    TILE_WIDTH,
    TilePath,
    decode_bundle,
    encode_bundle,
    entries_path,
    index_path,
    parse_path,
    tile_path,
    tile_shape,
)
from veilwatch.server.auth import AuthMiddleware
from veilwatch.server.routes.tiles import tile_routes
from veilwatch.storage.db import Database

ORIGIN = "tiles-test.example/log"
GO_SOURCE = Path(__file__).parent / "tlogverify"


def entries(count: int, start: int = 0) -> list[bytes]:
    return [f'{{"kind":"test","n":{i}}}'.encode() for i in range(start, start + count)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    with Database.open(tmp_path / "veilwatch.sqlite3") as db:
        yield AuditLog.open(db, tmp_path / "keys", ORIGIN, checkpoint_interval_s=0, tiles_dir=tmp_path / "log")


def test_paths_follow_the_spec() -> None:
    assert index_path(1234067) == "x001/x234/067"
    assert index_path(0) == "000" and index_path(1000) == "x001/000"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(3, 5, 17) == "tile/3/005.p/17"
    assert entries_path(1234067, 8) == "tile/entries/x001/x234/067.p/8"
    for path in ("tile/0/x001/x234/067", "tile/3/005.p/17", "tile/entries/x001/000", "tile/63/000.p/255"):
        assert str(parse_path(path)) == path
    assert parse_path("tile/entries/000.p/3") == TilePath(None, 0, 3)
    bad = ["tile/0/x000/001", "tile/0/1", "tile/64/000", "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/000.p/07"]
    bad += ["tile/01/000", "tile/0/../000", "checkpoint", "tile/0/x001", "tile/data/000", "tile/0/000/"]
    assert [p for p in bad if parse_path(p) is not None] == []


def test_shapes_match_the_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of
    # width 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2
    # tile of width 1" and "a tree of size 256 [by] a full level 0 tile and a partial level 1 tile of width 1".
    assert tile_shape(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert tile_shape(256) == [(0, 1, 0), (1, 0, 1)]
    assert tile_shape(0) == []


def test_bundles_are_uint16_length_prefixed() -> None:
    data = [b"", b"a", b"x" * 0xFFFF]
    encoded = encode_bundle(data)
    assert encoded[:5] == b"\x00\x00\x00\x01a" and encoded[5:7] == b"\xff\xff"
    assert decode_bundle(encoded) == data
    with pytest.raises(ValueError):
        encode_bundle([b"x" * 0x10000])
    with pytest.raises(ValueError):
        decode_bundle(encoded[:-1])


def test_tiles_hold_the_stored_tree(log: AuditLog, tmp_path: Path) -> None:
    data = entries(256 * 3 + 10)
    log.append_many(data)
    folder = tmp_path / "log"
    assert (folder / "tile/0/002").stat().st_size == TILE_WIDTH * 32  # full tiles appear as the tree grows
    assert not (folder / "checkpoint").exists()  # partial tiles only with a checkpoint
    log.checkpoint(force=True)
    hashes = [leaf_hash(d) for d in data]
    assert (folder / "tile/0/001").read_bytes() == b"".join(hashes[256:512])
    assert (folder / "tile/0/003.p/10").read_bytes() == b"".join(hashes[768:])
    level1 = (folder / "tile/1/000.p/3").read_bytes()
    assert [level1[i * 32 : i * 32 + 32] for i in range(3)] == [root(hashes[i * 256 : i * 256 + 256]) for i in range(3)]
    assert decode_bundle((folder / "tile/entries/003.p/10").read_bytes()) == data[768:]
    assert decode_bundle((folder / "tile/entries/000").read_bytes()) == data[:256]
    assert (folder / "checkpoint").read_text() == log.published_checkpoint()
    log.append_many(entries(246, len(data)))  # completes tile 3: its partials go
    assert (folder / "tile/0/003").exists() and not (folder / "tile/0/003.p").exists()
    assert not (folder / "tile/entries/003.p").exists()


def test_tiles_lost_in_a_crash_are_written_again(tmp_path: Path) -> None:
    with Database.open(tmp_path / "veilwatch.sqlite3") as db:
        log = AuditLog.open(db, tmp_path / "keys", ORIGIN, checkpoint_interval_s=0, tiles_dir=tmp_path / "log")
        log.append_many(entries(600))
        log.checkpoint(force=True)
    full = (tmp_path / "log/tile/0/001").read_bytes()
    shutil.rmtree(tmp_path / "log/tile")
    with Database.open(tmp_path / "veilwatch.sqlite3") as db:
        AuditLog.open(db, tmp_path / "keys", ORIGIN, checkpoint_interval_s=0, tiles_dir=tmp_path / "log")
    assert (tmp_path / "log/tile/0/001").read_bytes() == full
    assert (tmp_path / "log/tile/0/002.p/88").exists() and (tmp_path / "log/tile/entries/002.p/88").exists()


def tiles_app(log: AuditLog) -> FastAPI:
    app = FastAPI()
    app.router.routes.extend(tile_routes(log).routes)
    app.add_middleware(AuthMiddleware, routes=app.router.routes, lookup=lambda token: None, tokens={})
    return app


def test_served_under_log_with_cache_headers(log: AuditLog) -> None:
    with serving(tiles_app(log)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/log/checkpoint").text.splitlines()[:2] == [ORIGIN, "0"]  # the empty tree
        assert client.get("/log/tile/0/000.p/1").status_code == 404
        log.append_many(entries(300))
        answer = client.get("/log/checkpoint")
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-cache"
        assert answer.text.splitlines()[:2] == [ORIGIN, "300"]
        for path in ("/log/tile/0/000", "/log/tile/0/001.p/44", "/log/tile/1/000.p/1", "/log/tile/entries/001.p/44"):
            tile = client.get(path)
            assert tile.status_code == 200, path
            assert tile.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert tile.headers["content-type"] == "application/octet-stream"
        for path in ("/log/tile/0/001", "/log/tile/0/001.p/43", "/log/tile/0/x000/000", "/log/tile/0/../../keys"):
            assert client.get(path).status_code == 404, path


@pytest.fixture(scope="module")
def tlogverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built offline from Debian's golang.org/x/mod."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` is not installed (apt-get install golang-go golang-golang-x-mod-dev; CI does)")
    return build_tlogverify(go, tmp_path_factory.mktemp("go"))


def build_tlogverify(go: str, out: Path) -> Path:
    """`go build` tests/tlogverify into `out`, with no network."""
    binary = out / "tlogverify"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOCACHE": str(out / "cache"), "GOPATH": str(out)}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=GO_SOURCE, env=env, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return binary


def verify_with_go(binary: Path, key: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "-key", key, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_an_independent_go_client_verifies_every_entry(log: AuditLog, tmp_path: Path, tlogverify: Path) -> None:
    olds = []
    for count in (1, 255, 1, 4000, 743):  # sizes 1, 256, 257, 4257, 5000 (bench/tlog_tiles.py: 100,000)
        log.append_many(entries(count, log.size()))
        olds.append(tmp_path / f"checkpoint-{log.size()}")
        olds[-1].write_text(log.checkpoint(force=True))
    old_args = [arg for path in olds[:-1] for arg in ("-old", path)]
    with serving(tiles_app(log)) as base:
        over_http = verify_with_go(tlogverify, log.verifier_key, "-url", f"{base}/log/", *old_args)
    assert over_http.returncode == 0, over_http.stdout + over_http.stderr
    assert "inclusion   5000/5000 verified" in over_http.stdout
    assert "consistency 4/4 verified" in over_http.stdout
    from_folder = verify_with_go(tlogverify, log.verifier_key, "-dir", tmp_path / "log", *old_args)
    assert from_folder.returncode == 0 and "5000/5000" in from_folder.stdout, from_folder.stdout


def test_the_go_client_catches_tampering(log: AuditLog, tmp_path: Path, tlogverify: Path) -> None:
    log.append_many(entries(600))
    log.checkpoint(force=True)
    folder = tmp_path / "log"
    bundle = folder / "tile/entries/001"
    original = bundle.read_bytes()
    bundle.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    edited = verify_with_go(tlogverify, log.verifier_key, "-dir", folder)
    assert edited.returncode == 1 and "FAIL entry 511" in edited.stdout, edited.stdout
    bundle.write_bytes(original)
    other = AuditLog.open(log._db, tmp_path / "other-keys", ORIGIN).verifier_key  # same name, another key
    forged = verify_with_go(tlogverify, other, "-dir", folder)
    assert forged.returncode == 1 and "checkpoint signature" in forged.stdout, forged.stdout
    assert verify_with_go(tlogverify, log.verifier_key, "-dir", folder).returncode == 0


def test_audit_verify_reads_tiles_from_a_url_or_a_folder(log: AuditLog, tmp_path: Path) -> None:
    log.append_many(entries(300))
    saved = tmp_path / "saved"
    with serving(tiles_app(log)) as base:
        first = run_cli("audit", "verify", "--key", log.verifier_key, "--tiles", f"{base}/log/", "--save", saved)
        assert first.returncode == 0, first.stdout.decode() + first.stderr.decode()
        assert "300 in the export, 300 proven" in first.stdout.decode()
        log.append_many(entries(70_000, 300))  # level 2 appears
        again = run_cli("audit", "verify", "--key", log.verifier_key, "--tiles", f"{base}/log/", "--checkpoint", saved)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    report = again.stdout.decode()
    assert "70300 in the export, 70300 proven" in report and "saved        size 300" in report
    folder = tmp_path / "log"
    level1 = folder / "tile/1/000"
    good = level1.read_bytes()
    level1.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])  # a tile above the leaves that lies
    lying = run_cli("audit", "verify", "--key", log.verifier_key, "--tiles", folder)
    assert lying.returncode != 0 and "tile tile/1/000 does not match" in lying.stdout.decode(), lying.stdout.decode()
    level1.write_bytes(good)
    bundle = folder / "tile/entries/001"
    original = bundle.read_bytes()
    bundle.write_bytes(original.replace(b'"n":300}', b'"n":301}'))
    edited = run_cli("audit", "verify", "--key", log.verifier_key, "--tiles", folder)
    assert edited.returncode != 0 and "FIRST BAD    index 300" in edited.stdout.decode(), edited.stdout.decode()
