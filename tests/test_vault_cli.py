"""`veilwatch vault …` run as real subprocesses, with the default (strong) Argon2 parameters."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.helpers import cli_env, error_lines, run_cli
from veilwatch.vault import Approval, UnmaskRequest, VaultPublic, collect, new_request, read_bundle_info, seal

HOLDERS = ("alice", "bob", "carol")


@dataclass(frozen=True)
class Setup:
    """A 2-of-3 vault made by `veilwatch vault init`."""

    folder: Path
    vault: VaultPublic

    def passphrase(self, name: str) -> str:
        """The passphrase `name` chose."""
        return f"{name} says: correct horse battery"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """`vault init` for alice, bob and carol, K = 2, three days from 2026-03-01."""
    base = tmp_path_factory.mktemp("vault")
    files = []
    for name in HOLDERS:
        (base / f"{name}.pw").write_text(f"{name} says: correct horse battery\n")
        files += ["--passphrase-file", f"{name}={base / f'{name}.pw'}"]
    holders = [arg for name in HOLDERS for arg in ("--holder", name)]
    out = base / "out"
    result = run_cli(
        "vault", "init", *holders, "--k", "2", "--days", "3", "--first-day", "2026-03-01", "--out", out, *files
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "2 of 3 key holders, days 2026-03-01 to 2026-03-03" in result.stdout.decode()
    return Setup(out, VaultPublic.from_json((out / "vault.json").read_bytes()))


def write_request(setup: Setup, folder: Path, lifetime_s: int = 600) -> tuple[UnmaskRequest, Path, X25519PrivateKey]:
    """A request for 2026-03-02 10:00-10:05 made now, written where a holder would receive it."""
    start = 1_772_445_600_000_000  # 2026-03-02 10:00 UTC
    request, private = new_request(
        setup.vault,
        camera="door",
        start_us=start,
        end_us=start + 300_000_000,
        reason="a stolen bicycle",
        requester="olga",
        now=int(time.time()),
        lifetime_s=lifetime_s,
    )
    path = folder / "request.json"
    path.write_bytes(request.canonical())
    return request, path, private


def test_init_writes_a_public_vault_and_private_shares(setup: Setup) -> None:
    assert stat.S_IMODE((setup.folder / "vault.json").stat().st_mode) == 0o644
    for x, name in enumerate(HOLDERS, start=1):
        share = setup.folder / f"{name}.share"
        assert stat.S_IMODE(share.stat().st_mode) == 0o600
        info = read_bundle_info(share.read_bytes())
        assert (info.holder, info.x, info.vault_digest) == (name, x, setup.vault.digest())
        assert info.kdf.memory_kib == 65536  # the CLI never lowers the cost
        assert setup.passphrase(name).encode() not in share.read_bytes()
    assert sorted(p.name for p in setup.folder.iterdir()) == ["alice.share", "bob.share", "carol.share", "vault.json"]


def test_round_trip_init_approve_twice_combine_open(setup: Setup, tmp_path: Path) -> None:
    request, request_file, private = write_request(setup, tmp_path)
    day = request.days[0]
    associated = b"door|2026-03-02T10:00|segment-7"
    blob = seal(b"the raw face pixels", setup.vault.epoch_key(day), associated)
    approvals = []
    for name in ("alice", "carol"):
        out = tmp_path / f"{name}.approval.json"
        result = run_cli(
            "vault", "approve", "--share", setup.folder / f"{name}.share", "--request", request_file,
            "--passphrase-stdin", "--out", out,
            stdin=f"{setup.passphrase(name)}\n".encode(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert "a stolen bicycle" in result.stderr.decode()  # the holder sees what they approve
        assert f"{name} (x = " in result.stdout.decode()
        approvals.append(Approval.from_json(out.read_bytes()))
    keys = collect(
        request,
        approvals,
        setup.vault,
        revoked=set(),
        used_approval_ids=set(),
        now=int(time.time()),
        request_private=private,
    )
    with keys:
        assert keys.open_sealed(blob, associated) == b"the raw face pixels"


def test_a_wrong_passphrase_is_one_line_and_writes_nothing(setup: Setup, tmp_path: Path) -> None:
    _, request_file, _ = write_request(setup, tmp_path)
    out = tmp_path / "bob.approval.json"
    result = run_cli(
        "vault", "approve", "--share", setup.folder / "bob.share", "--request", request_file,
        "--passphrase-stdin", "--out", out, stdin=b"alice says: correct horse battery\n",
    )  # fmt: skip
    assert result.returncode == 6
    assert error_lines(result.stderr) == ["veilwatch: error: wrong passphrase for bob (or the share file was altered)"]
    assert "Traceback" not in result.stderr.decode()
    assert not out.exists()


def test_an_expired_request_is_refused_by_the_holder(setup: Setup, tmp_path: Path) -> None:
    _, request_file, _ = write_request(setup, tmp_path, lifetime_s=1)
    time.sleep(1.1)
    result = run_cli(
        "vault", "approve", "--share", setup.folder / "alice.share", "--request", request_file,
        "--passphrase-stdin", "--out", tmp_path / "a.json", stdin=b"alice says: correct horse battery\n",
    )  # fmt: skip
    assert result.returncode == 6
    assert len(error_lines(result.stderr)) == 1 and "expired at" in result.stderr.decode()


def test_init_never_replaces_an_existing_vault(setup: Setup) -> None:
    before = (setup.folder / "alice.share").read_bytes()
    result = run_cli(
        "vault", "init", "--holder", "alice", "--holder", "dan", "--k", "2", "--out", setup.folder,
        "--passphrase-file", f"alice={setup.folder.parent / 'alice.pw'}",
        "--passphrase-file", f"dan={setup.folder.parent / 'alice.pw'}",
    )  # fmt: skip
    assert result.returncode == 3
    assert error_lines(result.stderr) == [
        f"veilwatch: error: {setup.folder / 'vault.json'}: exists; a new vault never replaces an old one's files"
    ]
    assert (setup.folder / "alice.share").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--k", "1"], 6, "K must be 2..N (N = 2), not 1"),
        (["--k", "2", "--first-day", "March"], 6, "--first-day 'March' is not a YYYY-MM-DD date"),
        (["--k", "2", "--passphrase-file", "zoe=x"], 6, "--passphrase-file names 'zoe', who is not a --holder"),
        (["--k", "2", "--passphrase-file", "amy"], 6, "--passphrase-file takes NAME=FILE, not 'amy'"),
    ],
)
def test_bad_init_options_are_one_line(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    (tmp_path / "pw").write_text("long enough passphrase\n")
    files = ["--passphrase-file", f"amy={tmp_path / 'pw'}", "--passphrase-file", f"ben={tmp_path / 'pw'}"]
    result = run_cli("vault", "init", "--holder", "amy", "--holder", "ben", "--out", tmp_path / "v", *files, *args)
    assert result.returncode == code, result.stderr.decode()
    assert error_lines(result.stderr) == [f"veilwatch: error: {message}"]
    assert not (tmp_path / "v").exists()


def test_show_describes_each_kind_of_file(setup: Setup, tmp_path: Path) -> None:
    request, request_file, _ = write_request(setup, tmp_path)
    approval_file = tmp_path / "alice.approval.json"
    result = run_cli(
        "vault", "approve", "--share", setup.folder / "alice.share", "--request", request_file,
        "--passphrase-stdin", "--out", approval_file, stdin=b"alice says: correct horse battery\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    expected = {
        setup.folder / "vault.json": ["needs      2 of 3 key holders", setup.vault.digest().hex(), "x = 3  carol"],
        setup.folder / "bob.share": ["share bundle of bob (x = 2)", "argon2id t=3 m=65536 KiB p=4"],
        request_file: ["a stolen bicycle", request.digest().hex()],
        approval_file: ["by alice (x = 1)", request.id],
    }
    for path, lines in expected.items():
        shown = run_cli("vault", "show", path, columns=200)
        assert shown.returncode == 0, shown.stderr.decode()
        for line in lines:
            assert line in shown.stdout.decode(), (path, line)


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "no such file"),
        (b"hello", 6, "not a vault, share, unmask request or approval file"),
        (
            b'{"format": "veilwatch-vault", "version": 9}',
            6,
            "vault file version 9 is not supported (this veilwatch reads [1])",
        ),
    ],
)
def test_show_names_bad_files(tmp_path: Path, content: bytes | None, code: int, message: str) -> None:
    path = tmp_path / "f.json"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("vault", "show", path)
    assert result.returncode == code
    assert error_lines(result.stderr) == [f"veilwatch: error: {path}: {message}"]


def test_the_vault_commands_load_no_crypto_until_run() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "veilwatch.cli.app", "vault", "--help"],
        capture_output=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    assert "typer" in imported
    assert not {name for name in imported if name.split(".")[0] in {"cryptography", "Crypto", "argon2"}}
