"""The room's books: the database, the tamper-evident log, users, and the one action recorder.

`veilwatch serve` opens them inside `open_room`; `veilwatch users` and `veilwatch vault revoke`
open them alone with `open_records`. Keys are read before the database is opened, so a bad key
file fails the start with nothing to close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from veilwatch.audit.log import DEFAULT_CHECKPOINT_INTERVAL_S, KEY_FILE, AuditLog, load_signer, stored_origin
from veilwatch.audit.note import Signer
from veilwatch.audit.pseudonyms import Pseudonyms
from veilwatch.room.actions import ActionRecorder, PublicNames
from veilwatch.storage.actions import ActionLog
from veilwatch.storage.db import Database
from veilwatch.storage.users import UserStore

__all__ = ["DB_FILE", "KEY_DIR", "Keys", "Records", "open_records", "read_keys"]

DB_FILE = "veilwatch.sqlite3"
KEY_DIR = "keys"


@dataclass(frozen=True)
class Keys:
    """The keys a data folder holds: the log's signing key and the pseudonym key (read, never yet used)."""

    signer: Signer
    pseudonyms: Pseudonyms


@dataclass(frozen=True)
class Records:
    """The database and what is written into it: the log, the actions (read side), users, the recorder."""

    db: Database
    audit: AuditLog
    actions: ActionLog
    users: UserStore
    recorder: ActionRecorder


def read_keys(data_dir: Path, origin: str | None) -> Keys:
    """Read (making on first use) the data folder's keys; origin None: the existing key's own."""
    keys = data_dir / KEY_DIR
    if origin is None:
        origin = stored_origin(keys)
    return Keys(load_signer(keys, origin), Pseudonyms.open(keys))


def has_log_key(data_dir: Path) -> bool:
    """Whether the data folder already holds a log key (whose origin then wins)."""
    return (data_dir / KEY_DIR / KEY_FILE).exists()


def private_database(data_dir: Path) -> Database:
    """The database in a data folder only this server's user may enter (0700), its files 0600, whatever the umask."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # recordings, sealed faces, exports and keys live inside
    db = Database.open(data_dir / DB_FILE)
    for path in data_dir.glob(f"{DB_FILE}*"):  # the index, its -wal and -shm (SQLite copies the mode later)
        path.chmod(0o600)
    return db


def records_over(
    db: Database,
    keys: Keys,
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
    *,
    tiles_dir: Path | None = None,
    witness_quorum: int = 0,
) -> Records:
    """The books over an open database and keys already read (the log as tlog-tiles in `tiles_dir`, if given)."""
    audit = AuditLog.over(
        db, keys.signer, checkpoint_interval_s=checkpoint_interval_s, tiles_dir=tiles_dir, witness_quorum=witness_quorum
    )
    users = UserStore(db)
    # Every action goes into the Merkle log before it is stored, served or takes effect.
    actions = ActionLog(db, audit.append)
    return Records(db, audit, actions, users, ActionRecorder(actions, PublicNames(keys.pseudonyms, users)))


@contextlib.contextmanager
def open_records(data_dir: Path, origin: str | None) -> Iterator[Records]:
    """The books of a data folder, closed on leaving (the CLI's way in); origin None: the stored key's."""
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = read_keys(data_dir, origin)  # files first: a bad key opens no database
    with Database.open(data_dir / DB_FILE) as db:
        yield records_over(db, keys)
