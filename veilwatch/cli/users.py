"""`veilwatch users …`: add, list, re-password, re-role and remove people, straight in the database.

Every change goes into the tamper-evident log first (the server's log, in the same database, signed
with the same key); if the log cannot take it, nothing changes.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from veilwatch.audit.log import KEY_FILE, AuditLog, stored_origin
from veilwatch.config import AuditConfig, load_config
from veilwatch.errors import UnknownUserError, UserError
from veilwatch.storage.actions import SYSTEM, ActionLog, ActionRecord
from veilwatch.storage.db import Database
from veilwatch.storage.users import Role, UserStore, check_name, check_password

DEFAULT_DATA_DIR = Path("veilwatch-data")


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
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


def _store(config: Path | None, data_dir: Path | None) -> tuple[Database, UserStore, ActionLog]:
    folder = _data_dir(config, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    db = Database.open(folder / "veilwatch.sqlite3")
    try:
        keys = folder / "keys"
        # The origin: the existing key's, else the config's, else the default a server would use.
        origin = load_config(config).audit.log_origin if config is not None else AuditConfig().log_origin
        if (keys / KEY_FILE).exists():
            origin = stored_origin(keys)
        audit = AuditLog.open(db, keys, origin)
    except BaseException:
        db.close()
        raise
    return db, UserStore(db), ActionLog(db, audit.append)


def _log(actions: ActionLog, kind: str, **details: object) -> None:
    actions.record(ActionRecord(time.time(), SYSTEM, SYSTEM, kind, None, {"via": "cli", **details}))


def add(name: str, role: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Add one user."""
    password = _password(password_stdin)
    check_name(name)
    check_password(password)  # checked before the log hears of it: a refused add is no change
    db, users, actions = _store(config, data_dir)
    with db:
        if users.by_name(name) is not None:
            raise UserError(f"a user called {name!r} exists already")
        _log(actions, "user.create", user=name, role_given=role)
        user = users.add(name, password, Role(role))
    print(f"added {user.name} ({role})")
    return 0


def list_users(config: Path | None, data_dir: Path | None) -> int:
    """Print every user and role."""
    db, users, _ = _store(config, data_dir)
    with db:
        table = Table("name", "role")
        for user in users.list():
            table.add_row(user.name, str(user.role))
    Console().print(table)
    return 0


def passwd(name: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Set a new password; the user's sessions end."""
    password = _password(password_stdin)
    check_password(password)
    db, users, actions = _store(config, data_dir)
    with db:
        _known(users, name)
        _log(actions, "user.password", user=name)
        users.set_password(name, password)
    print(f"password of {name} changed; their sessions have ended")
    return 0


def set_role(name: str, role: str, config: Path | None, data_dir: Path | None) -> int:
    """Change a role; the user's sessions end."""
    db, users, actions = _store(config, data_dir)
    with db:
        _known(users, name)
        _log(actions, "user.role", user=name, role_given=role)
        users.set_role(name, Role(role))
    print(f"{name} is now {role}; their sessions have ended")
    return 0


def remove(name: str, config: Path | None, data_dir: Path | None) -> int:
    """Remove a user."""
    db, users, actions = _store(config, data_dir)
    with db:
        _known(users, name)
        _log(actions, "user.remove", user=name)
        users.remove(name)
    print(f"removed {name}")
    return 0


def _known(users: UserStore, name: str) -> None:
    if users.by_name(name) is None:
        raise UnknownUserError(f"no user called {name!r}")
