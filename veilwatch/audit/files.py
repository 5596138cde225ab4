"""Private files (the log's signing key, a witness's key and state): owner-only, written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from veilwatch.errors import AuditError

__all__ = ["read_private", "write_private"]


def write_private(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write `data` to `path` (mode 0600) via a temporary file; without `replace`, an existing file wins (False)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".veilwatch-", suffix=".part", dir=path.parent)  # mkstemp: mode 0600
    except OSError as exc:
        raise AuditError(f"cannot write here: {exc.strerror or exc}", path=str(path)) from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(tmp, path)
        elif not _link(tmp, path):
            return False
        _sync_folder(path.parent)
        return True
    except OSError as exc:
        raise AuditError(f"cannot write: {exc.strerror or exc}", path=str(path)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _link(tmp: Path, path: Path) -> bool:
    """Give the finished file its name only if the name is free (two processes creating a key: one wins)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    return True


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> str:
    """Read a private file, refusing one that others may read or write (a key may have leaked)."""
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise AuditError(
                f"refusing a key file others can access (mode {stat.S_IMODE(mode):o}; chmod 600)", path=str(path)
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=str(path)) from exc
