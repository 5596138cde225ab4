"""The log as C2SP tlog-tiles: what tiles add to a durable append, and an independent check of a large log.

1. Append latency. Two logs on real SQLite (synchronous=FULL) in one folder, one writing tiles and
   one not; single-entry appends alternate between them (so that load on the machine hits both
   alike). Each append is timed whole; the tile log's `TileStore.extend` (all the tile work an
   append does: nothing, or a full tile and bundle every 256th append) is also timed alone.
2. Independent verification. A log of `--entries` entries (default 100,000), with checkpoints
   signed along the way, served by the real `/log/` routes on loopback; tests/tlogverify (Go,
   golang.org/x/mod/sumdb/tlog and note) checks the checkpoint's signature, the inclusion of
   every entry and the consistency of every older checkpoint with the latest.

Run from the repository root, with the project's virtualenv active:
    python bench/tlog_tiles.py                       # both (about 2 minutes on 2 cores)
    python bench/tlog_tiles.py --appends 5000 --entries 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import serving
from tests.test_tlog_tiles import build_tlogverify, tiles_app
from veilwatch.audit.log import AuditLog
from veilwatch.audit.tiles import TileSource, TileStore
from veilwatch.storage.db import Database

ORIGIN = "bench.example/log"


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, values: list[float]) -> str:
    cells = [_ms(values, 0.5), _ms(values, 0.9), _ms(values, 0.99), 1000 * max(values), 1000 * statistics.mean(values)]
    return f"| {name:<34} | " + " | ".join(f"{c:8.3f}" for c in cells) + " |"


def timed_extend(store: TileStore, sink: list[float]) -> None:
    """Wrap `store.extend` so that each call's duration lands in `sink`."""
    inner: Callable[[int, TileSource], None] = store.extend

    def extend(size: int, source: TileSource) -> None:
        started = time.perf_counter()
        inner(size, source)
        sink.append(time.perf_counter() - started)

    store.extend = extend  # type: ignore[method-assign]


def append_latency(folder: Path, appends: int) -> None:
    """Print the append-latency table."""
    with Database.open(folder / "plain.sqlite3") as plain_db, Database.open(folder / "tiles.sqlite3") as tiles_db:
        plain = AuditLog.open(plain_db, folder / "keys", ORIGIN, checkpoint_interval_s=3600)
        tiled = AuditLog.open(tiles_db, folder / "keys", ORIGIN, checkpoint_interval_s=3600, tiles_dir=folder / "log")
        assert tiled.tiles is not None
        extend_s: list[float] = []
        timed_extend(tiled.tiles, extend_s)
        without: list[float] = []
        with_tiles: list[float] = []
        for i in range(appends):
            entry = f'{{"kind":"bench","n":{i}}}'.encode()
            for log, sink in ((plain, without), (tiled, with_tiles)):
                started = time.perf_counter()
                log.append(entry)
                sink.append(time.perf_counter() - started)
    print(f"\n{appends} durable single-entry appends each (ms), load average {os.getloadavg()[0]:.2f}\n")
    print(f"| {'':<34} |   median |      p90 |      p99 |      max |     mean |")
    print(f"|{'-' * 36}|{'----------|' * 5}")
    print(_row("append, no tiles", without))
    print(_row("append, writing tiles", with_tiles))
    print(_row("of which TileStore.extend", extend_s))
    delta = statistics.median(with_tiles) - statistics.median(without)
    print(f"\nmedian difference: {1000 * delta:+.3f} ms; tiles' own median: {_ms(extend_s, 0.5):.4f} ms")


def independent_check(folder: Path, total: int) -> int:
    """Build a log of `total` entries and have the Go client verify it over HTTP; its exit status."""
    go = shutil.which("go")
    if go is None:
        print("`go` is not installed: skipping the independent check")
        return 0
    binary = build_tlogverify(go, folder / "go")
    olds: list[Path] = []
    with Database.open(folder / "big.sqlite3") as db:
        log = AuditLog.open(db, folder / "big-keys", ORIGIN, checkpoint_interval_s=0, tiles_dir=folder / "big-log")
        for size in sorted({1, 255, 256, 257, 65_535, 65_536, 65_537, total // 3, total - 1, total}):
            if size > total or size <= log.size():
                continue
            log.append_many([f'{{"kind":"bench","n":{i}}}'.encode() for i in range(log.size(), size)])
            olds.append(folder / f"checkpoint-{size}")
            olds[-1].write_text(log.checkpoint(force=True))
        args = [arg for path in olds[:-1] for arg in ("-old", str(path))]
        with serving(tiles_app(log)) as base:
            started = time.perf_counter()
            result = subprocess.run(
                [str(binary), "-key", log.verifier_key, "-url", f"{base}/log/", *args],
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
    print(f"\ntests/tlogverify over HTTP, {total} entries, {len(olds) - 1} older checkpoints ({seconds:.1f} s):")
    print(result.stdout + result.stderr)
    return result.returncode


def main() -> int:
    """Run both parts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=3000, help="appends per log in the latency table")
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the verified log (0: skip)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tlog-tiles-") as tmp:
        if options.appends:
            append_latency(Path(tmp), options.appends)
        if options.entries:
            return independent_check(Path(tmp), options.entries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
