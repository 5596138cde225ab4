"""`veilwatch users …`: add, list, re-password, re-role and remove people, straight in the database.

Every change goes into the tamper-evident log first (the server's log, in the same database, signed
with the same key); if the log cannot take it, nothing changes.
"""

from __future__ import annotations

import getpass
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from veilwatch.audit.log import KEY_FILE, AuditLog, stored_origin
from veilwatch.audit.pseudonyms import Pseudonyms
from veilwatch.config import AuditConfig, load_config
from veilwatch.errors import UnknownUserError, UserError
from veilwatch.storage.actions import SYSTEM, ActionLog, ActionRecord
from veilwatch.storage.db import Database
from veilwatch.storage.users import Role, UserStore, check_name, check_password

DEFAULT_DATA_DIR = Path("veilwatch-data")


def resolve_data_dir(config: Path | None, data_dir: Path | None) -> Path:
    """The data folder: --data-dir, else the config's, else the default."""
    if data_dir is not None:
        return data_dir
    if config is not None:
        return load_config(config).server.data_dir
    return DEFAULT_DATA_DIR


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (10+ characters): ")
    if first != getpass.getpass("Again: "):
        raise UserError("the two passwords differ")
    return first


@dataclass(frozen=True)
class Room:
    db: Database
    users: UserStore
    actions: ActionLog
    pseudonyms: Pseudonyms

    def log(self, kind: str, name: str, role: str, **details: object) -> None:
        """Log a change to a user, who appears as the public log shows people of `role`."""
        user = self.pseudonyms.public(name, role)
        record = ActionRecord(time.time(), SYSTEM, SYSTEM, kind, None, {"via": "cli", "user": user, **details})
        self.actions.record(record)


def open_room(config: Path | None, data_dir: Path | None) -> Room:
    folder = resolve_data_dir(config, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    db = Database.open(folder / "veilwatch.sqlite3")
    try:
        keys = folder / "keys"
        # The origin: the existing key's, else the config's, else the default a server would use.
        origin = load_config(config).audit.log_origin if config is not None else AuditConfig().log_origin
        if (keys / KEY_FILE).exists():
            origin = stored_origin(keys)
        audit = AuditLog.open(db, keys, origin)
        pseudonyms = Pseudonyms.open(keys)
    except BaseException:
        db.close()
        raise
    return Room(db, UserStore(db), ActionLog(db, audit.append), pseudonyms)


def add(name: str, role: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Add one user."""
    password = _password(password_stdin)
    check_name(name)
    check_password(password)  # checked before the log hears of it: a refused add is no change
    room = open_room(config, data_dir)
    with room.db:
        if room.users.by_name(name) is not None:
            raise UserError(f"a user called {name!r} exists already")
        room.log("user.create", name, role, role_given=role)
        user = room.users.add(name, password, Role(role))
    print(f"added {user.name} ({role})")
    return 0


def list_users(config: Path | None, data_dir: Path | None) -> int:
    """Print every user and role."""
    room = open_room(config, data_dir)
    with room.db:
        table = Table("name", "role")
        for user in room.users.list():
            table.add_row(user.name, str(user.role))
    Console().print(table)
    return 0


def passwd(name: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Set a new password; the user's sessions end."""
    password = _password(password_stdin)
    check_password(password)
    room = open_room(config, data_dir)
    with room.db:
        room.log("user.password", name, _known(room.users, name))
        room.users.set_password(name, password)
    print(f"password of {name} changed; their sessions have ended")
    return 0


def set_role(name: str, role: str, config: Path | None, data_dir: Path | None) -> int:
    """Change a role; the user's sessions end."""
    room = open_room(config, data_dir)
    with room.db:
        before = _known(room.users, name)
        # Named if either role is staff: a visitor made operator becomes a public watcher.
        shown = role if before == "visitor" else before
        room.log("user.role", name, shown, role_given=role)
        room.users.set_role(name, Role(role))
    print(f"{name} is now {role}; their sessions have ended")
    return 0


def remove(name: str, config: Path | None, data_dir: Path | None) -> int:
    """Remove a user."""
    room = open_room(config, data_dir)
    with room.db:
        room.log("user.remove", name, _known(room.users, name))
        room.users.remove(name)
    print(f"removed {name}")
    return 0


def _known(users: UserStore, name: str) -> str:
    """The user's role; UnknownUserError if there is no such user."""
    user = users.by_name(name)
    if user is None:
        raise UnknownUserError(f"no user called {name!r}")
    return str(user.role)
