"""`veilwatch users …`: add, list, re-password, re-role and remove people, straight in the database."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from veilwatch.config import load_config
from veilwatch.errors import UserError
from veilwatch.storage.db import Database
from veilwatch.storage.users import Role, UserStore

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


def _store(config: Path | None, data_dir: Path | None) -> tuple[Database, UserStore]:
    folder = _data_dir(config, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    db = Database.open(folder / "veilwatch.sqlite3")
    return db, UserStore(db)


def add(name: str, role: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Add one user."""
    password = _password(password_stdin)
    db, users = _store(config, data_dir)
    with db:
        user = users.add(name, password, Role(role))
    print(f"added {user.name} ({role})")
    return 0


def list_users(config: Path | None, data_dir: Path | None) -> int:
    """Print every user and role."""
    db, users = _store(config, data_dir)
    with db:
        table = Table("name", "role")
        for user in users.list():
            table.add_row(user.name, str(user.role))
    Console().print(table)
    return 0


def passwd(name: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Set a new password; the user's sessions end."""
    password = _password(password_stdin)
    db, users = _store(config, data_dir)
    with db:
        users.set_password(name, password)
    print(f"password of {name} changed; their sessions have ended")
    return 0


def set_role(name: str, role: str, config: Path | None, data_dir: Path | None) -> int:
    """Change a role; the user's sessions end."""
    db, users = _store(config, data_dir)
    with db:
        users.set_role(name, Role(role))
    print(f"{name} is now {role}; their sessions have ended")
    return 0


def remove(name: str, config: Path | None, data_dir: Path | None) -> int:
    """Remove a user."""
    db, users = _store(config, data_dir)
    with db:
        users.remove(name)
    print(f"removed {name}")
    return 0
