"""Speed benchmark: video throughput (frames/s) of veilwatch, deface and the decode+encode floor.

Inputs: the clips in ../shared/data/videos at native size, plus 720p (1280x720) and 1080p
(1920x1080) versions of each, made once with PyAV (frame.reformat, libx264 crf 18, same frame
rate) and cached in bench/out/clips/. A clip that is already at a target size is used as it is.

For every clip and resolution the tools run in alternation (veilwatch, deface-opencv,
deface-onnxrt, floor, then again, `--repeats` times), and each run's wall time is measured:

* veilwatch: `veilwatch anonymize CLIP -o OUT.mp4 --overwrite --quiet` (+ `--veilwatch-args`);
* deface-opencv / deface-onnxrt: `deface CLIP -o OUT.mp4 --backend opencv|onnxrt`, its defaults
  otherwise (opencv is what a plain `pip install deface` runs: it does not install onnxruntime);
* floor: PyAV decode of every frame to an rgb24 array and libx264 re-encode (preset veryfast,
  crf 20) into a file, in this process: no detection and no veiling, so no tool can be faster.

fps = input frames / wall seconds, process start included for the command-line tools. With
several repeats the median is reported. The machine should be otherwise idle.

Run from the repository root, with the project's virtualenv active:
    python bench/speed.py                                        # everything (long)
    python bench/speed.py --clips hamilton --resolutions native  # quick check
    python bench/speed.py --repeats 3 --markdown --json bench/out/speed.json
    python bench/speed.py --videos bench/out/video_truth/clips --resolutions native  # video_veil_check's clips
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from common import executable
from rich import box
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "out"

ALIASES = {
    "facenet-pytorch-video": "facenet",
    "face_recognition-short_hamilton_clip": "hamilton",
    "intel-one-by-one-person-detection": "intel",
}
RESOLUTIONS: dict[str, tuple[int, int] | None] = {"native": None, "720p": (1280, 720), "1080p": (1920, 1080)}
TOOLS = ("veilwatch", "deface-opencv", "deface-onnxrt", "floor")
SCALED_CRF = "18"
FLOOR_OPTIONS = {"preset": "veryfast", "crf": "20"}


@dataclass
class Case:
    """One clip at one resolution."""

    clip: str
    resolution: str
    path: Path
    width: int
    height: int
    frames: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def fps(self, tool: str) -> float | None:
        """Frames per second from the median wall time, None if the tool did not run or failed."""
        runs = self.seconds.get(tool)
        if not runs or tool in self.failures:
            return None
        return self.frames / statistics.median(runs)


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache and output folder")
    parser.add_argument(
        "--clips",
        nargs="+",
        help=f"clip names or parts of file names (default: all; {', '.join(ALIASES.values())})",
    )
    parser.add_argument(
        "--videos",
        type=Path,
        help="time the clips in this folder instead of DATA/videos (e.g. video_veil_check's: "
        "bench/out/video_truth/clips, with --resolutions native)",
    )
    parser.add_argument(
        "--resolutions", nargs="+", choices=list(RESOLUTIONS), default=list(RESOLUTIONS), help="sizes to run"
    )
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="what to time")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds per clip and size")
    parser.add_argument("--veilwatch-args", default="", help="extra veilwatch CLI arguments")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, help="also save all timings to this JSON file")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- clips


def clip_name(path: Path) -> str:
    return ALIASES.get(path.stem, path.stem)


def find_clips(videos: Path, wanted: list[str] | None) -> list[Path]:
    """The data's video files, filtered by alias or part of the file name."""
    clips = sorted(p for p in videos.iterdir() if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".avi"})
    if wanted:
        clips = [p for p in clips if any(w == clip_name(p) or w in p.name for w in wanted)]
    if not clips:
        raise SystemExit(f"no clip in {videos} matches {wanted}")
    return clips


def probe(path: Path) -> tuple[int, int, int]:
    """Width, height and frame count (video packets, counted without decoding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
    return int(width), int(height), frames


def add_x264(out: Any, source: Any, width: int, height: int, options: dict[str, str]) -> Any:
    """A yuv420p libx264 stream in `out` with the frame rate and time base of `source`."""
    encoder = out.add_stream("libx264", rate=source.average_rate or source.guessed_rate or Fraction(25))
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    time_base = source.time_base or Fraction(1, 90000)
    encoder.time_base = time_base
    encoder.codec_context.time_base = time_base
    encoder.codec_context.options = options
    return encoder


def scaled_clip(source: Path, width: int, height: int, cache: Path) -> Path:
    """`source` resized to width×height (libx264 crf 18, same timing), made once and cached."""
    target = cache / f"{source.stem}-{width}x{height}.mp4"
    if target.exists():
        return target
    import av

    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.mp4")
    print(f"making {target.name} …", file=sys.stderr)
    with av.open(str(source)) as inp, av.open(str(partial), mode="w") as out:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        encoder = add_x264(out, stream, width, height, {"crf": SCALED_CRF})
        for frame in inp.decode(stream):
            resized = frame.reformat(width=width, height=height, format="yuv420p")
            resized.pts, resized.time_base = frame.pts, frame.time_base
            out.mux(encoder.encode(resized))
        out.mux(encoder.encode())
    partial.replace(target)
    return target


def build_cases(clips: list[Path], resolutions: list[str], cache: Path) -> list[Case]:
    """Every (clip, resolution) to time; a size equal to the native one is only run once."""
    cases: list[Case] = []
    for source in clips:
        native_w, native_h, _ = probe(source)
        seen: set[tuple[int, int]] = set()
        for label in resolutions:
            size = RESOLUTIONS[label] or (native_w, native_h)
            if size in seen:
                continue
            seen.add(size)
            native = size == (native_w, native_h)
            path = source if native else scaled_clip(source, size[0], size[1], cache)
            width, height, frames = probe(path)
            shown = "native" if label == "native" else (f"{label} (native)" if native else label)
            cases.append(Case(clip_name(source), shown, path, width, height, frames))
    return cases


# --------------------------------------------------------------------------- timing


def command_for(tool: str, clip: Path, output: Path, veilwatch_args: str) -> list[str]:
    if tool == "veilwatch":
        return [
            executable("veilwatch"),
            "anonymize",
            str(clip),
            "-o",
            str(output),
            "--overwrite",
            "--quiet",
            *shlex.split(veilwatch_args),
        ]
    backend = tool.removeprefix("deface-")
    return [executable("deface"), str(clip), "-o", str(output), "--backend", backend]


def time_command(command: list[str], output: Path) -> tuple[float, str | None]:
    """Wall seconds of one command, and an error line if it failed or wrote nothing."""
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or [""]
        return seconds, f"exit {completed.returncode}: {tail[0][:200]}"
    if not output.exists() or output.stat().st_size == 0:
        return seconds, "no output file"
    return seconds, None


def floor(clip: Path, output: Path) -> int:
    """Decode every frame to rgb24 and re-encode it with libx264; returns the frames written."""
    import av

    frames = 0
    with av.open(str(clip)) as inp, av.open(str(output), mode="w") as out:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        encoder = add_x264(out, stream, width, height, dict(FLOOR_OPTIONS))
        for decoded in inp.decode(stream):
            pixels = decoded.to_ndarray(format="rgb24")
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = decoded.pts, decoded.time_base
            out.mux(encoder.encode(frame))
            frames += 1
        out.mux(encoder.encode())
    return frames


def time_floor(clip: Path, output: Path, expected: int) -> tuple[float, str | None]:
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    frames = floor(clip, output)
    seconds = time.perf_counter() - started
    return seconds, None if frames == expected else f"decoded {frames} frames, expected {expected}"


def run_case(case: Case, tools: list[str], repeats: int, work: Path, veilwatch_args: str) -> None:
    """Time every tool on one case, alternating tools within each round."""
    for round_index in range(repeats):
        for tool in tools:
            output = work / f"{tool}.mp4"
            if tool == "floor":
                seconds, error = time_floor(case.path, output, case.frames)
            else:
                seconds, error = time_command(command_for(tool, case.path, output, veilwatch_args), output)
            case.seconds.setdefault(tool, []).append(seconds)
            if error is not None:
                case.failures[tool] = error
            note = f"FAILED ({error})" if error else f"{case.frames / seconds:.2f} fps"
            where = f"[{round_index + 1}/{repeats}] {case.clip} {case.resolution} {tool}"
            print(f"{where}: {seconds:.1f} s, {note}", file=sys.stderr)


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def results_table(cases: list[Case], markdown: bool) -> Table:
    title = "Throughput, frames/s (wall clock, process start included; higher is better)"
    table = Table(title=title, box=box.MARKDOWN if markdown else box.SIMPLE_HEAVY, title_justify="left")
    columns = ["clip", "resolution", "frames", *TOOLS, "veilwatch÷deface-opencv", "veilwatch÷floor"]
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < 2 else "right")
    for case in cases:
        fps: dict[str, float | None] = {tool: case.fps(tool) for tool in TOOLS}
        table.add_row(
            case.clip,
            f"{case.resolution} {case.width}x{case.height}",
            str(case.frames),
            *(fmt(fps[tool]) for tool in TOOLS),
            fmt(ratio(fps["veilwatch"], fps["deface-opencv"])),
            fmt(ratio(fps["veilwatch"], fps["floor"])),
        )
    return table


def as_json(cases: list[Case], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "repeats": args.repeats,
        "veilwatch_args": args.veilwatch_args,
        "cases": [
            {
                "clip": c.clip,
                "resolution": c.resolution,
                "path": str(c.path),
                "width": c.width,
                "height": c.height,
                "frames": c.frames,
                "seconds": c.seconds,
                "fps": {t: c.fps(t) for t in TOOLS},
                "failures": c.failures,
            }
            for c in cases
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    videos = (args.videos or args.data / "videos").resolve()
    if not videos.is_dir():
        raise SystemExit(f"no videos at {videos} (use --data DIR)")
    out: Path = args.out.resolve()
    work = out / "speed"
    work.mkdir(parents=True, exist_ok=True)
    tools = [tool for tool in TOOLS if tool in args.tools]

    cases = build_cases(find_clips(videos, args.clips), args.resolutions, out / "clips")
    for case in cases:
        run_case(case, tools, max(1, args.repeats), work, args.veilwatch_args)

    Console(width=200).print(results_table(cases, args.markdown))
    for case in cases:
        for tool, error in case.failures.items():
            print(f"failed: {case.clip} {case.resolution} {tool}: {error}", file=sys.stderr)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(as_json(cases, args), indent=1))
    return 1 if any(case.failures for case in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
