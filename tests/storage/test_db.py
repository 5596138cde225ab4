"""The database: migrations, the single writer thread, read-only readers, clean shutdown."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from veilwatch.errors import StorageError
from veilwatch.storage import Database
from veilwatch.storage.db import MIGRATIONS_DIR
from veilwatch.storage.models import ActionRow, Base

TABLES = {"users", "sessions", "segments", "actions"}


def _version(db: Database) -> str | None:
    version: str | None = db.read(lambda s: s.scalar(text("SELECT version_num FROM alembic_version")))
    return version


def _head() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _add_action(session: Session, actor: str = "system") -> int:
    row = ActionRow(at=1.0, actor=actor, role="system", kind="test", camera=None, details="{}")
    session.add(row)
    session.flush()
    return row.id


def _count_actions(db: Database) -> int:
    return db.read(lambda s: s.scalar(select(func.count()).select_from(ActionRow)) or 0)


def test_fresh_database_is_migrated_to_head(db: Database) -> None:
    assert _version(db) == _head() == "0004"
    names = set(db.read(lambda s: s.scalars(text("SELECT name FROM sqlite_master WHERE type='table'")).all()))
    assert names >= TABLES


def test_connections_use_wal_foreign_keys_and_a_busy_timeout(db: Database) -> None:
    pragmas = db.read(
        lambda s: [s.scalar(text(f"PRAGMA {name}")) for name in ("journal_mode", "foreign_keys", "busy_timeout")]
    )
    assert pragmas == ["wal", 1, 5000]
    assert db.write(lambda s: s.scalar(text("PRAGMA foreign_keys"))) == 1


def test_reopening_keeps_data_and_runs_no_migration_again(data_dir: Path) -> None:
    path = data_dir / "veilwatch.db"
    with Database.open(path) as db:
        db.write(_add_action)
    with Database.open(path) as db:
        assert _version(db) == _head()
        assert _count_actions(db) == 1


def test_models_match_the_migrated_schema(db: Database) -> None:
    differences = db.read(lambda s: compare_metadata(MigrationContext.configure(s.connection()), Base.metadata))
    assert differences == []
    # Alembic does not compare AUTOINCREMENT, so check it both ways by hand.
    schema: dict[str, str] = dict(
        db.read(lambda s: s.execute(text("SELECT name, sql FROM sqlite_master WHERE type='table'")).all())
    )
    for table in TABLES:
        assert "AUTOINCREMENT" in schema[table]
        assert Base.metadata.tables[table].dialect_options["sqlite"]["autoincrement"] is True


def test_ids_of_deleted_rows_are_never_reused(db: Database) -> None:
    first = db.write(_add_action)
    db.write(lambda s: s.execute(delete(ActionRow)))
    assert db.write(_add_action) == first + 1


def test_migrations_are_numbered_in_one_chain_and_shipped_as_packages() -> None:
    versions = MIGRATIONS_DIR / "versions"
    files = sorted(p.name for p in versions.glob("*.py") if p.name != "__init__.py")
    assert files and all(re.fullmatch(r"v\d{4}_[a-z0-9_]+\.py", name) for name in files)
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    previous = None
    for number, name in enumerate(files, start=1):
        revision = script.get_revision(f"{number:04d}")
        assert revision is not None and Path(revision.path).name == name
        assert revision.down_revision == previous
        previous = revision.revision
    # setuptools ships only packages: both folders must be importable ones, beside env.py.
    assert (MIGRATIONS_DIR / "__init__.py").is_file() and (versions / "__init__.py").is_file()
    assert (MIGRATIONS_DIR / "env.py").is_file()


def test_many_threads_write_without_database_is_locked(db: Database) -> None:
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for _ in range(20):
                new_id = db.write(lambda s: _add_action(s, f"user{n}"))
                _count_actions(db)  # readers run meanwhile
                with lock:
                    ids.append(new_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 320 == _count_actions(db)


def test_two_databases_on_one_file_wait_for_each_other(data_dir: Path) -> None:
    path = data_dir / "veilwatch.db"
    with Database.open(path) as first, Database.open(path) as second:
        threads = [threading.Thread(target=_hammer, args=(database,)) for database in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _count_actions(first) == 60


def _hammer(db: Database) -> None:
    for _ in range(30):
        db.write(_add_action)


class BoomError(Exception):
    pass


def test_a_failing_write_rolls_back_and_raises_in_the_caller(db: Database) -> None:
    def fail(session: Session) -> None:
        _add_action(session)
        raise BoomError("no")

    with pytest.raises(BoomError, match="no"):
        db.write(fail)
    assert _count_actions(db) == 0
    db.write(_add_action)  # the writer goes on
    assert _count_actions(db) == 1


def test_readers_cannot_write(db: Database) -> None:
    with pytest.raises(OperationalError, match=r"readonly|read-only|query_only"):
        db.read(_add_action)


def test_a_write_inside_a_write_is_refused(db: Database) -> None:
    with pytest.raises(StorageError, match="inside a write"):
        db.write(lambda s: db.write(_add_action))


def test_close_is_idempotent_and_refuses_later_use(data_dir: Path) -> None:
    db = Database.open(data_dir / "veilwatch.db")
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(StorageError, match="closed"):
        db.write(_add_action)
    with pytest.raises(StorageError, match="closed"):
        db.read(_add_action)


def test_a_database_from_a_newer_veilwatch_is_refused(data_dir: Path) -> None:
    path = data_dir / "veilwatch.db"
    Database.open(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.close()
    threads = threading.active_count()
    with pytest.raises(StorageError, match="newer veilwatch"):
        Database.open(path)
    assert threading.active_count() == threads  # the failed open stopped its writer


def test_a_file_that_is_not_a_database_is_refused(data_dir: Path) -> None:
    path = data_dir / "veilwatch.db"
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(StorageError, match="cannot open the database"):
        Database.open(path)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_opening_and_closing_leaks_no_file_handles_or_threads(data_dir: Path) -> None:
    path = data_dir / "veilwatch.db"
    Database.open(path).close()  # first open creates the file and imports Alembic
    fds, threads = _open_fds(), threading.active_count()
    for _ in range(50):
        with Database.open(path) as db:
            db.write(_add_action)
            _count_actions(db)
    assert _open_fds() == fds
    assert threading.active_count() == threads
