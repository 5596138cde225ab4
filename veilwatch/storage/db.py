"""SQLite for a threaded server: one writer thread, read-only readers, migrations at open.

SQLite allows one writer at a time; many threads each taking the write lock would meet
"database is locked" under load. So, as datasette does, exactly one thread owns the only write
connection: `Database.write(fn)` hands `fn` to that thread, which runs it inside
`BEGIN IMMEDIATE … COMMIT` and passes the result (or the exception, after a rollback) back to
the caller. Reads run in the caller's own thread on read-only connections; WAL journaling lets
them proceed while the writer writes.

Nothing here is global: every engine, connection and thread belongs to one `Database` and is
released by its `close()`.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from veilwatch.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Alembic's script directory, shipped inside the package (see migrations/__init__.py).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Readers kept open between reads; more are opened (and closed after use) when needed.
_READ_POOL_SIZE = 4

_Job = Callable[[], None]
# Alembic keeps the migration context in a module-level proxy, so two databases opening at
# once in one process must take turns (the only process-wide state here, and it holds nothing).
_ALEMBIC_LOCK = threading.Lock()


class Database:
    """One SQLite file: a writer thread for every write, read-only connections for reads."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        # Use Database.open(): it also migrates the schema and checks the file.
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._write_engine = _writer_engine(path, busy_timeout_s)
        self._read_engine: Engine | None = None
        # A daemon thread, so that a forgotten close() cannot hang interpreter exit; SQLite's
        # journal keeps the file consistent even if the process ends mid-transaction.
        self._writer = threading.Thread(target=self._serve, name=f"veilwatch-db-writer:{path.name}", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, path: Path, *, busy_timeout_s: float = 5.0) -> Database:
        """Open (creating if needed) the database at `path` and migrate it to the newest schema."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the database folder: {exc.strerror or exc}", path=str(path)) from exc
        db = cls(path, busy_timeout_s=busy_timeout_s)
        try:
            db._on_writer(db._migrate)
            db._read_engine = _reader_engine(path, busy_timeout_s)
        except BaseException:
            db.close()
            raise
        return db

    # -- writes ---------------------------------------------------------------------------------

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` on the writer thread in one IMMEDIATE transaction; return or raise its outcome."""
        return self._on_writer(lambda: self._transaction(fn))

    def _transaction(self, fn: Callable[[Session], T]) -> T:
        # expire_on_commit=False: values fn read stay readable after the commit.
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    def _on_writer(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._writer:
            # The writer would wait for itself forever.
            raise StorageError("Database.write() called from inside a write", path=str(self.path))
        future: Future[T] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        with self._lock:  # so that close() cannot slip in between the check and the put
            if self._closed:
                raise StorageError("the database is closed", path=str(self.path))
            self._jobs.put(job)
        return future.result()

    def _serve(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                job()
        finally:
            # The write connection is created, used and closed on this thread only.
            self._write_engine.dispose()

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("path_separator", "os")
        try:
            # One IMMEDIATE transaction: two processes opening a fresh file migrate one after the other.
            with _ALEMBIC_LOCK, self._write_engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:
            raise StorageError(f"cannot migrate the database (is it from a newer veilwatch?): {exc}") from exc
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the database: {_reason(exc)}", path=str(self.path)) from exc

    # -- reads ----------------------------------------------------------------------------------

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in this thread on a read-only connection, in one consistent snapshot."""
        with self._lock:
            engine = self._read_engine
            if self._closed or engine is None:
                raise StorageError("the database is closed", path=str(self.path))
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, stop the writer thread and close every connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
            engine, self._read_engine = self._read_engine, None
        if threading.current_thread() is not self._writer:
            self._writer.join()
        if engine is not None:
            engine.dispose()

    @property
    def closed(self) -> bool:
        """Whether close() has been called."""
        return self._closed

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}{', closed' if self._closed else ''})"


def _writer_engine(path: Path, busy_timeout_s: float) -> Engine:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module must not open transactions on its own; the
        # "begin" hook below opens each one, IMMEDIATE, so the write lock is taken up front
        # rather than on the first write (which could then fail with SQLITE_BUSY mid-transaction).
        connection = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"cannot switch the database to WAL journaling (got {mode!r})", path=str(path))
            _pragmas(connection, busy_timeout_s)
            # FULL: a committed row (an audit record, a finished segment) survives power loss too.
            connection.execute("PRAGMA synchronous=FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    # One connection, kept open for the life of the database and used by the writer thread only.
    engine = create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool, pool_size=1, max_overflow=0)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _reader_engine(path: Path, busy_timeout_s: float) -> Engine:
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            _pragmas(connection, busy_timeout_s)
            connection.execute("PRAGMA query_only=ON")  # belt and braces beside mode=ro
        except BaseException:
            connection.close()
            raise
        return connection

    # max_overflow=-1: a burst of readers never waits for a pooled connection; extras close on return.
    engine = create_engine(
        "sqlite+pysqlite://", creator=connect, poolclass=QueuePool, pool_size=_READ_POOL_SIZE, max_overflow=-1
    )
    event.listen(engine, "begin", _begin_deferred)
    return engine


def _pragmas(connection: sqlite3.Connection, busy_timeout_s: float) -> None:
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(connection: Connection) -> None:
    # A real transaction, so that every query of one read sees the same snapshot.
    connection.exec_driver_sql("BEGIN")


def _reason(exc: BaseException) -> str:
    orig: Any = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())[:200]
