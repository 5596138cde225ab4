"""`veilwatch users …`: add, list, re-password, re-role and remove people, straight in the database.

Every change goes into the tamper-evident log first (the server's log, in the same database, signed
with the same key); if the log cannot take it, nothing changes.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from veilwatch.access import Role
from veilwatch.config import AuditConfig, load_config
from veilwatch.errors import UnknownUserError, UserError
from veilwatch.room.records import Records, has_log_key, open_records
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.users import UserStore, check_name, check_password

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


@contextlib.contextmanager
def open_books(config: Path | None, data_dir: Path | None) -> Iterator[Records]:
    """The data folder's books (database, log, users, recorder), closed on leaving."""
    folder = resolve_data_dir(config, data_dir)
    # The origin: the existing key's, else the config's, else the default a server would use.
    origin = None
    if not has_log_key(folder):
        origin = load_config(config).audit.log_origin if config is not None else AuditConfig().log_origin
    with open_records(folder, origin) as records:
        yield records


def _log(records: Records, kind: ActionKind, name: str, role: str, **details: object) -> None:
    """Log a change to a user, who appears as the public log shows people of `role`."""
    user = records.recorder.person(name, role)
    records.recorder.record_public(kind, None, via="cli", user=user, **details)


def add(name: str, role: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Add one user."""
    password = _password(password_stdin)
    check_name(name)
    check_password(password)  # checked before the log hears of it: a refused add is no change
    with open_books(config, data_dir) as room:
        if room.users.by_name(name) is not None:
            raise UserError(f"a user called {name!r} exists already")
        _log(room, ActionKind.USER_CREATE, name, role, role_given=role)
        user = room.users.add(name, password, Role(role))
    print(f"added {user.name} ({role})")
    return 0


def list_users(config: Path | None, data_dir: Path | None) -> int:
    """Print every user and role."""
    with open_books(config, data_dir) as room:
        table = Table("name", "role")
        for user in room.users.list():
            table.add_row(user.name, str(user.role))
    Console().print(table)
    return 0


def passwd(name: str, password_stdin: bool, config: Path | None, data_dir: Path | None) -> int:
    """Set a new password; the user's sessions end."""
    password = _password(password_stdin)
    check_password(password)
    with open_books(config, data_dir) as room:
        _log(room, ActionKind.USER_PASSWORD, name, _known(room.users, name))
        room.users.set_password(name, password)
    print(f"password of {name} changed; their sessions have ended")
    return 0


def set_role(name: str, role: str, config: Path | None, data_dir: Path | None) -> int:
    """Change a role; the user's sessions end."""
    with open_books(config, data_dir) as room:
        before = _known(room.users, name)
        # Named if either role is staff: a visitor made operator becomes a public watcher.
        shown = role if before == Role.VISITOR else before
        _log(room, ActionKind.USER_ROLE, name, shown, role_given=role)
        room.users.set_role(name, Role(role))
    print(f"{name} is now {role}; their sessions have ended")
    return 0


def remove(name: str, config: Path | None, data_dir: Path | None) -> int:
    """Remove a user."""
    with open_books(config, data_dir) as room:
        _log(room, ActionKind.USER_REMOVE, name, _known(room.users, name))
        room.users.remove(name)
    print(f"removed {name}")
    return 0


def _known(users: UserStore, name: str) -> str:
    """The user's role; UnknownUserError if there is no such user."""
    user = users.by_name(name)
    if user is None:
        raise UnknownUserError(f"no user called {name!r}")
    return str(user.role)
