"""`veilwatch audit …` and `veilwatch witness …`: check the tamper-evident log, export it, witness it."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

from veilwatch.audit.client import LogClient
from veilwatch.audit.log import AuditLog, stored_origin
from veilwatch.audit.note import NoteError, Verifier
from veilwatch.audit.tileclient import TileClient, check_upper_tiles
from veilwatch.audit.verify import ExportError, LogExport, VerifyResult, verify_log
from veilwatch.audit.witness import check_and_cosign, create_witness, load_witness, save_state
from veilwatch.cli.users import resolve_data_dir
from veilwatch.errors import ConfigError, InputError, InputNotFoundError, LogVerificationError
from veilwatch.media.atomic import atomic_output
from veilwatch.storage.db import Database

DATABASE = "veilwatch.sqlite3"
KEY_DIR = "keys"


def verify(
    server: str | None,
    export: Path | None,
    key: str,
    checkpoint: Path | None,
    save: Path | None,
    witnesses: list[str],
    timeout_s: float,
    tiles: str | None = None,
) -> int:
    """Check an export file, a running server or a tile log against the log's key and a saved checkpoint."""
    if sum(source is not None for source in (server, export, tiles)) != 1:
        raise ConfigError("give one of --server URL, --tiles URL|FOLDER or --export FILE")
    log_key = _key(key, "--key")
    witness_keys = [_key(w, "--witness") for w in witnesses]
    saved = _read_text(checkpoint) if checkpoint is not None else None
    if tiles is not None:
        result = _verify_tiles(tiles, log_key, saved, witness_keys, timeout_s)
    else:
        if export is not None:
            data = _read_export(export)
        else:
            with LogClient(str(server), timeout_s=timeout_s) as client:
                data = client.export(log_key)
        try:
            result = verify_log(data, log_key, saved_checkpoint=saved, witnesses=witness_keys)
        except ExportError as exc:
            raise InputError(str(exc), path=str(export) if export else server) from exc
    _report(result)
    if not result.ok:
        raise LogVerificationError(result.summary)
    if save is not None:
        with atomic_output(save, overwrite=True) as tmp:
            tmp.write_text(result.checkpoint, encoding="utf-8")
        print(f"saved        the checkpoint to {save}: check the next export against it")
    return 0


def _verify_tiles(
    where: str, log_key: Verifier, saved: str | None, witnesses: list[Verifier], timeout_s: float
) -> VerifyResult:
    """Verify a C2SP tlog-tiles log (URL prefix or mirrored folder): entries, level-0 tiles, then the tiles above."""
    with TileClient(where, timeout_s=timeout_s) as client:
        data = client.export(log_key)
        result = verify_log(data, log_key, saved_checkpoint=saved, witnesses=witnesses)
        if result.ok and data.hashes is not None:
            result = check_upper_tiles(client, result, list(data.hashes))
    return result


def _report(result: VerifyResult) -> None:
    print(f"log          {result.origin}")
    print(f"checkpoint   size {result.size}, root {_b64(result.root)}")
    if result.saved_size is not None:
        print(f"saved        size {result.saved_size}")
    print(f"witnesses    {', '.join(result.cosigned_by) if result.cosigned_by else 'no cosignature checked'}")
    print(f"entries      {result.entries} in the export, {result.verified_prefix} proven")
    if result.ok:
        print("result       OK: the entries are exactly what the log signed, and it only grew")
        return
    if result.first_bad_index is not None:
        exact = "" if result.exact else f" (entries before {result.verified_prefix} are proven good)"
        print(f"FIRST BAD    index {result.first_bad_index}{exact}")
    for problem in result.problems:
        print(f"problem      {problem}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def export(config: Path | None, data_dir: Path | None, output: Path) -> int:
    """Write the log of a data folder (entries, stored hashes, checkpoints) to a JSON file."""
    folder = resolve_data_dir(config, data_dir)
    path = folder / DATABASE
    if not path.exists():
        raise InputNotFoundError("no veilwatch database here", path=str(path))
    with Database.open(path) as db:
        log = AuditLog.open(db, folder / KEY_DIR, stored_origin(folder / KEY_DIR))
        data = log.export_log()
    with atomic_output(output, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data.to_json()) + "\n", encoding="utf-8")
    print(f"exported {len(data.entries)} entries of {data.origin} to {output}")
    print(f"log key  {data.verifier_key}")
    return 0


def witness_init(state: Path, name: str | None) -> int:
    """Make (or show) this witness's key; print the verifier key a log's [audit] witnesses takes."""
    cosigner, made = create_witness(state, name or f"{socket.gethostname()}/veilwatch-witness")
    print(cosigner.verifier.vkey)
    if not made:
        print(f"(the existing witness key in {state}; nothing was changed)")
    return 0


def witness_cosign(server: str, log_key: str, state: Path, timeout_s: float) -> int:
    """Fetch a log's checkpoint, check it extends the last one cosigned, cosign it, hand it back."""
    key = _key(log_key, "--log-key")
    cosigner, remembered = load_witness(state)
    previous = remembered.logs.get(key.vkey)
    with LogClient(server, timeout_s=timeout_s) as client:
        outcome = check_and_cosign(previous, client.checkpoint(), key, client.consistency, cosigner, int(time.time()))
        # Remember before handing back: the witness has seen and vouched for this tree either way.
        save_state(state, remembered.with_checkpoint(key, outcome.checkpoint))
        accepted = client.post_cosignature(outcome.note)
    since = "first sight" if previous is None else f"extends size {previous.size}"
    print(f"cosigned {outcome.checkpoint.origin} at size {outcome.checkpoint.size} ({since})")
    print(f"accepted by the log: {', '.join(accepted)}")
    return 0


def witness_serve(state: Path, log_keys: list[str], host: str, port: int) -> int:
    """Serve add-checkpoint for these logs until interrupted."""
    import uvicorn

    from veilwatch.audit.tlogwitness import WitnessService
    from veilwatch.server.witness_app import witness_app

    service = WitnessService(state, [_key(key, "--log-key") for key in log_keys])
    print(f"witness for {', '.join(_key(key, '--log-key').name for key in log_keys)} on http://{host}:{port}/")
    uvicorn.run(witness_app(service), host=host, port=port, log_level="warning")
    return 0


def _key(text: str, option: str) -> Verifier:
    try:
        return Verifier.parse(text)
    except NoteError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputNotFoundError("file not found", path=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=str(path)) from exc


def _read_export(path: Path) -> LogExport:
    try:
        return LogExport.from_json(json.loads(_read_text(path)))
    except (ValueError, ExportError) as exc:
        raise InputError(f"not a log export: {exc}", path=str(path)) from exc
