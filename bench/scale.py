"""Scale-out benchmark: the local engine against `--engine ray`, with 1 and 2 workers.

Inputs: the clips in ../shared/data/videos (one folder run: the three clips together) and the
faces-dev images (one folder run: 457 pictures). For each input set, engine and worker count it
times one run of the real command line, process start and (for Ray) Ray's own start included:

    veilwatch anonymize INPUT -o OUT --overwrite --quiet --workers N --report R.json [--engine ray]

and reads from the report each file's latency (the `seconds` of its summary: from its first job's
start to its output being complete) and frame count. Throughput = frames (videos) or files
(images) ÷ wall seconds. The machine's load average is noted before and after each run.

With `--gpu`, it instead measures frames per second at 1080p on the GPUs of this machine
(`--engine ray`, GPU actors through ONNX Runtime's CUDA provider): `--gpu-copies` copies of the
intel clip scaled to 1920×1080 (made once with PyAV, as bench/speed.py does), run with each of
`--gpu-workers` actor counts. It needs onnxruntime-gpu; it refuses to run without a CUDA provider.

Run from the repository root, with the project's virtualenv active:
    python bench/scale.py                    # the CPU table (about 10 minutes on 2 cores)
    python bench/scale.py --sets images      # images only
    python bench/scale.py --gpu              # on a GPU box: 1080p fps (goal: 1,000+ on one H200)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import REPO, SHARED, executable

DEFAULT_OUT = REPO / "bench" / "out"
SETS = ("videos", "images")
ENGINES = ("local", "ray")


@dataclass
class Run:
    """One timed command line."""

    inputs: str
    engine: str
    workers: int
    wall_s: float = 0.0
    files: int = 0
    frames: int = 0
    latencies_s: list[float] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    exit_code: int = 0
    note: str = ""

    @property
    def throughput(self) -> float:
        """Frames (videos) or files (images) per wall second."""
        work = self.frames if self.inputs != "images" else self.files
        return work / self.wall_s if self.wall_s else 0.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data", help="evaluation data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work and output folder")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="inputs to run")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="worker counts")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES), help="engines")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT / "scale.json", help="where to save the results")
    parser.add_argument("--gpu", action="store_true", help="measure 1080p fps on this machine's GPUs instead")
    parser.add_argument("--gpu-copies", type=int, default=8, help="copies of the 1080p clip in the GPU run")
    parser.add_argument("--gpu-workers", nargs="+", type=int, default=[8, 16], help="actor counts for --gpu")
    return parser.parse_args(argv)


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def run_once(inputs: str, source: Path, engine: str, workers: int, work: Path, extra: Sequence[str] = ()) -> Run:
    """Time one `veilwatch anonymize` over `source` and read the report."""
    out, report = work / f"{inputs}-{engine}-{workers}", work / f"{inputs}-{engine}-{workers}.json"
    shutil.rmtree(out, ignore_errors=True)
    command = [executable("veilwatch"), "anonymize", str(source), "-o", str(out), "--overwrite", "--quiet"]
    command += ["--workers", str(workers), "--report", str(report), "--engine", engine, *extra]
    run = Run(inputs, engine, workers, load_before=load())
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    run.wall_s = time.perf_counter() - started
    run.load_after, run.exit_code = load(), result.returncode
    if result.returncode:
        run.note = (result.stderr.strip().splitlines() or ["?"])[-1][:200]
    if report.exists():
        files = json.loads(report.read_text())["files"]
        run.files = len(files)
        run.frames = sum(f["frames"] for f in files)
        run.latencies_s = [f["seconds"] for f in files]
    shutil.rmtree(out, ignore_errors=True)
    return run


def sources(args: argparse.Namespace) -> dict[str, Path]:
    """Input folders by set name."""
    found = {"videos": args.data / "videos", "images": args.data / "faces-dev" / "images"}
    for name in args.sets:
        if not found[name].is_dir():
            raise SystemExit(f"missing {found[name]}")
    return {name: found[name] for name in args.sets}


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def table(runs: list[Run]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| inputs | engine | workers | wall s | throughput | latency median / p95 / max s | load before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        unit = "files/s" if r.inputs == "images" else "fps"
        lat = r.latencies_s
        latency = f"{statistics.median(lat):.2f} / {percentile(lat, 0.95):.2f} / {max(lat):.2f}" if lat else "–"
        status = "" if not r.exit_code else f" (exit {r.exit_code}: {r.note})"
        lines.append(
            f"| {r.inputs} ({r.files} files, {r.frames} frames) | {r.engine} | {r.workers} | {r.wall_s:.1f} | "
            f"{r.throughput:.2f} {unit} | {latency} | {r.load_before:.2f} → {r.load_after:.2f}{status} |"
        )
    return "\n".join(lines)


def cpu_bench(args: argparse.Namespace) -> list[Run]:
    """Every input set × worker count × engine, alternating engines."""
    work = args.out / "scale"
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for name, folder in sources(args).items():
        for workers in args.workers:
            for engine in args.engines:
                print(f"{name}: {engine}, {workers} worker(s) …", file=sys.stderr, flush=True)
                runs.append(run_once(name, folder, engine, workers, work))
    return runs


def gpu_bench(args: argparse.Namespace) -> list[Run]:
    """1080p frames per second on this machine's GPUs, Ray engine, several actor counts."""
    import onnxruntime as ort
    from speed import scaled_clip

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit("no CUDA provider in ONNX Runtime: install onnxruntime-gpu on a machine with a GPU")
    clip = scaled_clip(args.data / "videos" / "intel-one-by-one-person-detection.mp4", 1920, 1080, args.out / "clips")
    folder = args.out / "scale" / "gpu-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(args.gpu_copies):
        copy = folder / f"intel-1080p-{i}.mp4"
        if not copy.exists():
            shutil.copyfile(clip, copy)
    runs = []
    for workers in args.gpu_workers:
        print(f"1080p on GPU: {workers} actors …", file=sys.stderr, flush=True)
        runs.append(run_once("1080p-gpu", folder, "ray", workers, args.out / "scale", ["--device", "cuda"]))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runs = gpu_bench(args) if args.gpu else cpu_bench(args)
    print(table(runs))
    document: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "gpu": args.gpu,
        "runs": [{**asdict(r), "throughput": r.throughput} for r in runs],
    }
    target = args.json if not args.gpu or args.json != DEFAULT_OUT / "scale.json" else DEFAULT_OUT / "scale-gpu.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=1))
    return max((r.exit_code for r in runs), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
