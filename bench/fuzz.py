"""Fuzz `veilwatch anonymize` with hostile media through the real command line.

Makes its own corpus (tests/hostile.py: truncations, bit flips and byte insertions of small valid
PNG/JPEG/TIFF/WebP/BMP/AVIF/MP4/MKV/WebM/TS/GIF files made with Pillow and PyAV, huge declared sizes,
empty files, wrong extensions, random bytes), runs it in folders of `--batch` files (one command
per folder, so start-up is paid once per folder), and reports what became of every file:

    python bench/fuzz.py --files 10000            # about 20 minutes on 2 cores
    python bench/fuzz.py --files 300 --batch 100  # a quick look

Every file must be either veiled (an output appears) or refused with one `error:` line naming
it; tracebacks, worker deaths, internal errors and files with neither are counted apart. Peak
memory is the largest resident set of any process of the runs (getrusage of the children: the
command line and its worker processes).
"""

from __future__ import annotations

import argparse
import datetime
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package, from the checkout

from tests.hostile import HostileFile, hostile_corpus

DEATHS = ("exited unexpectedly", "decoder crashed")


@dataclass
class Tally:
    """What became of the files."""

    files: int = 0
    veiled: int = 0
    refused: int = 0
    tracebacks: int = 0
    worker_deaths: int = 0
    internal_errors: int = 0
    unaccounted: int = 0
    parts_left: int = 0
    by_mutation: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def run_batch(files: list[HostileFile], work: Path, tally: Tally, timeout: float) -> None:
    """Write one folder of hostile files, veil it with the real command line, and count the outcome."""
    inputs, outputs = work / "in", work / "out"
    inputs.mkdir()
    for hostile in files:
        (inputs / hostile.name).write_bytes(hostile.data)
    command = [sys.executable, "-m", "veilwatch.cli.app", "anonymize", str(inputs), "-o", str(outputs), "-q"]
    result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    stderr = result.stderr.decode(errors="replace")
    refused = {name for name in (h.name for h in files) if re.search(rf"error:.*{re.escape(name)}", stderr)}
    written = {p.name for p in outputs.rglob("*") if p.is_file() and not p.name.startswith(".")}
    tally.files += len(files)
    tally.tracebacks += stderr.count("Traceback")
    tally.worker_deaths += sum(stderr.count(death) for death in DEATHS)
    tally.internal_errors += stderr.count("internal error")
    tally.parts_left += sum(1 for p in outputs.rglob(".veilwatch-*") if p.is_file())
    for hostile in files:
        stem = hostile.name.rsplit(".", 1)[0]
        if hostile.name in refused:
            tally.refused += 1
            tally.by_mutation[f"{hostile.mutation} refused"] += 1
        elif any(name.startswith(stem + ".") for name in written):
            tally.veiled += 1
            tally.by_mutation[f"{hostile.mutation} veiled"] += 1
        else:
            tally.unaccounted += 1
            tally.examples.append(hostile.name)
    if ("Traceback" in stderr or any(d in stderr for d in DEATHS)) and len(tally.examples) < 20:
        tally.examples.append(stderr[-2000:])
    tally.examples.extend(line for line in stderr.splitlines() if "internal error" in line)


def table(tally: Tally, peak_mb: float, seconds: float, command: str) -> str:
    """The result as a Markdown table."""
    rows = [
        ("files", tally.files),
        ("veiled", tally.veiled),
        ("refused with one clear line", tally.refused),
        ("tracebacks", tally.tracebacks),
        ("worker deaths", tally.worker_deaths),
        ("internal errors", tally.internal_errors),
        ("neither veiled nor refused", tally.unaccounted),
        ("temporary files left", tally.parts_left),
        ("peak RSS of one process (MB)", f"{peak_mb:.0f}"),
        ("wall time (s)", f"{seconds:.0f}"),
    ]
    lines = [f"`{command}`, {datetime.date.today().isoformat()}", "", "| | |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| mutation | outcome | files |", "|---|---|---:|"]
    for key, count in sorted(tally.by_mutation.items()):
        mutation, outcome = key.rsplit(" ", 1)
        lines.append(f"| {mutation} | {outcome} | {count} |")
    return "\n".join(lines)


def main() -> int:
    """Make the corpus, run it batch by batch, print the table; exit 1 if any goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="how many hostile files (default 10000)")
    parser.add_argument("--batch", type=int, default=500, help="files per command-line run (default 500)")
    parser.add_argument("--seed", type=int, default=2024, help="corpus seed (default 2024)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one batch may take")
    args = parser.parse_args()
    started = time.monotonic()
    tally = Tally()
    corpus = list(hostile_corpus(args.files, args.seed))
    with tempfile.TemporaryDirectory(prefix="veilwatch-fuzz-") as tmp:
        for first in range(0, len(corpus), args.batch):
            work = Path(tmp) / f"batch{first:06d}"
            work.mkdir()
            run_batch(corpus[first : first + args.batch], work, tally, args.timeout)
            print(f"{tally.files}/{len(corpus)} files, {time.monotonic() - started:.0f} s", file=sys.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    command = "python bench/fuzz.py " + " ".join(sys.argv[1:])
    print(table(tally, peak_mb, time.monotonic() - started, command.strip()))
    for example in tally.examples[:10]:
        print("\n---\n" + example, file=sys.stderr)
    failed = tally.tracebacks or tally.worker_deaths or tally.internal_errors or tally.unaccounted
    return 1 if failed or tally.parts_left or peak_mb >= 2048 else 0


if __name__ == "__main__":
    raise SystemExit(main())
