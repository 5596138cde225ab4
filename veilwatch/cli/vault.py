"""`veilwatch vault …`: set up key holders, approve unmask requests offline, show what a file holds.

Everything here runs on the key holders' side and needs no server: `init` on the set-up machine
(once a year), `approve` on a holder's own machine, `show` anywhere. Passphrases are asked for
twice at set-up, or read from files (`--passphrase-file NAME=FILE`) or stdin for scripts.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from veilwatch.errors import InputError, InputNotFoundError, OutputError, VaultError, VaultFileError
from veilwatch.media.atomic import PART_PREFIX, PART_SUFFIX, atomic_output
from veilwatch.vault import (
    Approval,
    HolderSpec,
    UnmaskRequest,
    VaultPublic,
    approve,
    create_vault,
    read_bundle_info,
)
from veilwatch.vault.bundle import BUNDLE_FORMAT, MIN_PASSPHRASE_LENGTH
from veilwatch.vault.public import VAULT_FORMAT
from veilwatch.vault.unmask import APPROVAL_FORMAT, REQUEST_FORMAT

VAULT_FILE = "vault.json"
SHARE_SUFFIX = ".share"


def init(
    holders: Sequence[str], k: int, days: int, first_day: str | None, out: Path, passphrase_files: Sequence[str]
) -> int:
    """Make a vault: `out/vault.json` (public) and one `<name>.share` (mode 0600) per holder."""
    start = _first_day(first_day)
    targets = [out / VAULT_FILE, *(out / f"{name}{SHARE_SUFFIX}" for name in holders)]
    for target in targets:
        if target.exists():
            raise OutputError("exists; a new vault never replaces an old one's files", path=str(target))
    from_files = _passphrase_files(passphrase_files, holders)
    specs = [HolderSpec(name, from_files[name] if name in from_files else _ask_twice(name)) for name in holders]
    vault, bundles = create_vault(specs, k, start, days)
    _write_all(
        out, vault.to_json() + b"\n", [(f"{s.name}{SHARE_SUFFIX}", b) for s, b in zip(specs, bundles, strict=True)]
    )
    print(f"vault {vault.vault_id}: {vault.k} of {vault.n} key holders, days {vault.first_day} to {vault.last_day}")
    print(f"digest {vault.digest().hex()}  (each holder: check the server publishes this one)")
    print(f"wrote {out / VAULT_FILE} for the server")
    for spec in specs:
        print(f"wrote {out / (spec.name + SHARE_SUFFIX)}: give it to {spec.name} only, then delete it here")
    print(f"run `veilwatch vault init` again before {vault.last_day}")
    return 0


def _first_day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise VaultError(f"--first-day {text[:40]!r} is not a YYYY-MM-DD date") from None


def _passphrase_files(entries: Sequence[str], holders: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries:
        name, sep, file = entry.partition("=")
        if not sep or not file:
            raise VaultError(f"--passphrase-file takes NAME=FILE, not {entry[:80]!r}")
        if name not in holders:
            raise VaultError(f"--passphrase-file names {name[:70]!r}, who is not a --holder")
        try:
            found[name] = _read(Path(file)).decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError("a passphrase file must be UTF-8 text", path=file) from None
    return found


def _ask_twice(name: str) -> str:
    first = getpass.getpass(f"Passphrase for {name} ({MIN_PASSPHRASE_LENGTH}+ characters): ")
    if first != getpass.getpass(f"Again, for {name}: "):
        raise VaultError(f"the two passphrases for {name} differ")
    return first


def _write_all(folder: Path, public: bytes, private: Sequence[tuple[str, bytes]]) -> None:
    """Write every file or none: all go to private temporary files first, then are renamed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {exc.strerror or exc}", path=str(folder)) from exc
    staged: list[tuple[Path, Path]] = []
    done: list[Path] = []
    try:
        for name, data in [*private, (VAULT_FILE, public)]:
            # mkstemp creates the file 0600: a share is never readable by others, not even for a moment.
            fd, tmp = tempfile.mkstemp(prefix=PART_PREFIX, suffix=PART_SUFFIX, dir=folder)
            staged.append((Path(tmp), folder / name))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(staged[-1][0], 0o644)  # vault.json is public
        for tmp_path, target in staged:
            os.replace(tmp_path, target)
            done.append(target)
    except OSError as exc:
        for path in [tmp for tmp, _ in staged] + done:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise OutputError(f"cannot write the vault files: {exc.strerror or exc}", path=str(folder)) from exc


def approve_request(share: Path, request_file: Path, passphrase_stdin: bool, out: Path) -> int:
    """Approve an unmask request with one holder's share, writing the signed approval to `out`."""
    bundle = _read(share)
    info = read_bundle_info(bundle)
    request = UnmaskRequest.from_json(_read(request_file))
    if out.exists():
        raise OutputError("exists; an approval is never overwritten", path=str(out))
    print(request.summary(), file=sys.stderr)
    if passphrase_stdin:
        passphrase = sys.stdin.readline().rstrip("\r\n")
    else:
        passphrase = getpass.getpass(f"Approve as {info.holder}? Passphrase for {info.holder}: ")
    approval = approve(bundle, passphrase, request, int(time.time()))
    with atomic_output(out, overwrite=False) as tmp:
        tmp.write_bytes(approval.to_json())
    print(f"{info.holder} (x = {info.x}) approved request {request.id}; hand {out} to the server")
    return 0


def show(path: Path) -> int:
    """Print what a vault, share, request or approval file holds (never a secret)."""
    data = _read(path)
    try:
        kind = json.loads(data).get("format")
    except (ValueError, UnicodeDecodeError, AttributeError):
        kind = None
    printers = {
        VAULT_FORMAT: _show_vault,
        BUNDLE_FORMAT: _show_bundle,
        REQUEST_FORMAT: lambda d: print(UnmaskRequest.from_json(d).summary()),
        APPROVAL_FORMAT: _show_approval,
    }
    printer = printers.get(kind) if isinstance(kind, str) else None
    if printer is None:
        raise VaultFileError("not a vault, share, unmask request or approval file", path=str(path))
    try:
        printer(data)
    except VaultError as exc:
        exc.path = str(path)
        raise
    return 0


def _show_vault(data: bytes) -> None:
    vault = VaultPublic.from_json(data)
    print(f"vault {vault.vault_id} (public file: no secrets)")
    print(f"  digest     {vault.digest().hex()}")
    print(f"  needs      {vault.k} of {vault.n} key holders")
    print(f"  days       {vault.first_day} to {vault.last_day} ({len(vault.epochs)} day keys)")
    for holder in vault.holders:
        print(f"  holder     x = {holder.x}  {holder.name}  (signing key {holder.signing_public.hex()[:16]}…)")


def _show_bundle(data: bytes) -> None:
    info = read_bundle_info(data)
    print(f"share bundle of {info.holder} (x = {info.x}); its secrets are encrypted")
    print(f"  vault      {info.vault_id}")
    print(f"  digest     {info.vault_digest.hex()}  (the vault.json it was made with)")
    print(f"  needs      {info.k} of {info.n} key holders")
    print(f"  days       {info.first_day} to {info.last_day} ({info.days} shares)")
    kdf = info.kdf
    print(f"  protected  argon2id t={kdf.time_cost} m={kdf.memory_kib} KiB p={kdf.parallelism}, AES-256-GCM")


def _show_approval(data: bytes) -> None:
    approval = Approval.from_json(data)
    print(f"approval {approval.id} by {approval.holder} (x = {approval.x}); signature not checked here")
    print(f"  request    {approval.request_id}")
    print(f"  digest     {approval.request_digest.hex()}")
    print(f"  created    {_when(approval.created)}")
    print(f"  expires    {_when(approval.expires)}")
    print(f"  shares     {len(approval.shares)} bytes, sealed to the request's key")


def _when(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (out of range)"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError("no such file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(path)) from exc


def revoke(holder: str, config: Path | None, data_dir: Path | None) -> int:
    """Stop the server accepting a key holder's approvals (logged first); re-run `vault init` afterwards."""
    from veilwatch.cli.users import open_books
    from veilwatch.storage.actions import SYSTEM, ActionKind
    from veilwatch.storage.unmask_requests import UnmaskStore

    with open_books(config, data_dir) as room:
        room.recorder.record_public(ActionKind.VAULT_REVOKE, None, via="cli", holder=holder)
        UnmaskStore(room.db).revoke(holder, time.time(), SYSTEM)
    print(
        f"{holder}'s approvals are refused from now on. Their shares still combine offline with K-1 others: "
        "run `veilwatch vault init` for a new vault and configure it."
    )
    return 0
