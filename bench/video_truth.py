"""Veiled recall and over-redaction in motion, against ground truth: veilwatch (file and live pass) and deface.

Runs `../shared/tools/video_veil_check.py`, which builds clips with a known box for every face in
every frame (pans, zooms, a still wall, walkers) from faces-dev and judges each tool as a black box,
then prints one table. Three tools, at their defaults:

- `veilwatch`: `veilwatch anonymize` (files: look-back and the full scan schedule);
- `veilwatch-live`: the same engine as a camera runs it (`serve`'s detector defaults, among them
  min_face 16; `Engine.video_veiler(live=True)`: no look-back, a full search of the first frame),
  every frame pushed in order, so what is measured is the veiling, not dropped frames
  (`bench/live.py` measures those); `--live-min-face 8` runs it at the file default;
- `deface`: deface 1.5.0 with its OpenCV backend (what `pip install deface` runs).

    python bench/video_truth.py                  # all three, about 15 minutes on 2 cores
    python bench/video_truth.py --tools veilwatch --handheld
    python bench/video_truth.py --live-pass IN OUT   # (used by the table: one clip, live pass)

`--handheld` also builds the tool's hand-held clips (a random-walk camera), which the shared
script leaves out by default.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

from common import REPO, SHARED, executable

TOOLS = ("veilwatch", "veilwatch-live", "deface")
BUCKETS = ("8-16", "16-32", "32-64", ">=64")


def live_pass(source: Path, output: Path, min_face: float | None = None) -> None:
    """Veil a file as a live camera would (`serve`'s detector defaults, no look-back), writing every frame."""
    from veilwatch.config import LIVE_ENGINE
    from veilwatch.media.encode import VideoWriter
    from veilwatch.media.video import VideoReader
    from veilwatch.pipeline.engine import Engine
    from veilwatch.settings import AnonymizeSettings

    live = LIVE_ENGINE
    detector = live.detector if min_face is None else live.detector.model_copy(update={"min_face": min_face})
    settings = AnonymizeSettings(detector=detector, tracker=live.tracker, veil=live.veil)
    engine = Engine(settings)
    with VideoReader(source) as reader:
        info = reader.info
        veiler = engine.video_veiler(info.rate or Fraction(25), info.width, info.height, live=True)
        writer = VideoWriter(output, info, settings.video)
        for frame in reader.frames():
            for done in veiler.push(frame):
                writer.write(done.frame)
        for done in veiler.finish():
            writer.write(done.frame)
        writer.close()


def _checker(handheld: bool) -> ModuleType:
    """The shared judge, imported from where it lies (optionally with its hand-held clips)."""
    path = SHARED / "tools" / "video_veil_check.py"
    spec = importlib.util.spec_from_file_location("video_veil_check", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HANDHELD = handheld  # type: ignore[attr-defined]  # the judge's own switch for its hand-held clips
    return module


def commands(tools: list[str], live_min_face: float | None) -> list[str]:
    """video_veil_check's --cmd arguments for the chosen tools."""
    python = sys.executable
    live = f"{python} {Path(__file__).resolve()} --live-pass {{in}} {{out}}"
    if live_min_face is not None:
        live += f" --live-min-face {live_min_face}"
    table = {
        "veilwatch": f"{executable('veilwatch')} anonymize {{in}} -o {{out}} --quiet --overwrite",
        "veilwatch-live": live,
        "deface": f"{executable('deface')} {{in}} -o {{out}} --backend opencv",
    }
    return [f"{tool}={table[tool]}" for tool in tools]


def print_table(report: dict[str, Any]) -> None:
    """The markdown table of bench/README.md."""
    print("| tool | " + " | ".join(BUCKETS) + " | unveiled face-frames | longest run | over-redaction | seconds |")
    print("|---" * (len(BUCKETS) + 5) + "|")
    for tool, row in report.items():
        recall = " | ".join(f"{row['recall'][b][0]:.3f}" if row["recall"][b][0] is not None else "–" for b in BUCKETS)
        print(
            f"| {tool} | {recall} | {row['unveiled_face_frames']} / {row['face_frames']} | "
            f"{row['longest_unveiled_run']} | {row['over_redaction']} | {row['seconds']} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the judge for the chosen tools and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "video_truth")
    parser.add_argument("--handheld", action="store_true", help="also the hand-held clips")
    parser.add_argument("--live-pass", nargs=2, type=Path, metavar=("IN", "OUT"))
    parser.add_argument("--live-min-face", type=float, help="the live pass's min_face (default: serve's)")
    args = parser.parse_args(argv)
    if args.live_pass:
        source, output = args.live_pass
        live_pass(source, output, args.live_min_face)
        return 0
    checker = _checker(args.handheld)
    result = args.work / "report.json"
    sys.argv = ["video_veil_check.py", "--faces", str(SHARED / "data" / "faces-dev"), "--work", str(args.work)]
    for command in commands(args.tools, args.live_min_face):
        sys.argv += ["--cmd", command]
    sys.argv += ["--json", str(result)]
    checker.main()
    print_table(json.loads(result.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
