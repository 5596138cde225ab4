"""Outputs appear whole or not at all: write to a temporary file beside the target, then rename.

An interrupted run leaves nothing under the final name (a killed one may leave a hidden
`.veilwatch-*.part` file, never the final name), and because the rename replaces the old file in
one step, no bytes of an older output survive inside a new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from veilwatch.errors import OutputError

PART_PREFIX = ".veilwatch-"
PART_SUFFIX = ".part"


@contextlib.contextmanager
def atomic_output(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to `target`, on failure removed."""
    if target.exists() and not overwrite:
        raise OutputError("output exists (use --overwrite to replace it)", path=str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=PART_PREFIX, suffix=PART_SUFFIX + target.suffix, dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror or exc}", path=str(target)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; outputs get normal modes
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
