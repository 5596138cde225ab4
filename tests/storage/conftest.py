"""Fixtures of the storage tests: a real SQLite file per test, real argon2, real PyAV."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tests.storage.builders import Clock
from veilwatch.storage import Database, SegmentIndex


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def db(data_dir: Path) -> Iterator[Database]:
    """A freshly migrated database in the data folder."""
    with Database.open(data_dir / "veilwatch.db") as database:
        yield database


@pytest.fixture
def index(db: Database, data_dir: Path) -> SegmentIndex:
    """The segment index of the data folder."""
    return SegmentIndex(db, data_dir)


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock."""
    return Clock()


@pytest.fixture
def cheap_hasher() -> PasswordHasher:
    """Real argon2id with small parameters, for tests about sessions rather than hashing."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, so that a real 'No space left on device' can happen (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)
