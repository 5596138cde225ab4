"""Why faces were not veiled: every face that veil_check.py counts as unveiled, after a run of accuracy.py.

For each annotated face (inner 80 % of its box, as veil_check.py judges it) whose detail survives
veilwatch's output (correlation ≥ 0.3), it shows the detection that overlaps it most, with its score,
and how much of the face the veils of that run cover, and sorts it into one of:

* undetected: no veil covers 30 % of the face (the network's score stayed below the threshold);
* under-covered: a detection exists, but its veil leaves part of the face open (a box on the eyes
  only, a face cut by the frame's edge, a partial box of an occluded face);
* covered: veils cover (nearly) all of the face, yet its detail survives the veil itself.

Run from the repository root after `python bench/accuracy.py --tool veilwatch` (same --out):
    python bench/veil_misses.py                       # faces from 32 px tall
    python bench/veil_misses.py --min-height 8 --crops bench/out/misses
It reads bench/out/accuracy/: the filtered annotations, veilwatch's outputs and its --report JSON.
With --crops, each miss is written as a PNG: the original with the face (green) and nearby
detections (red, with scores), beside veilwatch's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from common import detail_survival
from PIL import Image

from veilwatch.boxes import coverage, iou_matrix
from veilwatch.redaction.veils import veil_areas
from veilwatch.settings import VeilSettings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "out" / "accuracy"
DETAIL_LIMIT = 0.3  # veil_check.py's --detail default
BUCKETS = [(8.0, 16.0, "8–16"), (16.0, 32.0, "16–32"), (32.0, 64.0, "32–64"), (64.0, float("inf"), "≥64")]

Grey = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Miss:
    """One face whose detail survived, and what the run did near it."""

    file: str
    box: tuple[float, float, float, float]  # x, y, w, h as annotated
    detail: float
    best_iou: float
    best_score: float | None
    covered: float  # share of the inner box under the run's veils (the best single veil)
    kind: str

    @property
    def bucket(self) -> str:
        """The face-height bucket."""
        return next(name for lo, hi, name in BUCKETS if lo <= self.box[3] < hi)


def grey(path: Path) -> Grey:
    """Luma as veil_check.py reads it."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def inner_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The part of a face box veil_check.py compares (its inner 80 %, in whole pixels)."""
    x0, y0 = max(0, round(x + 0.1 * w)), max(0, round(y + 0.1 * h))
    x1, y1 = round(x + 0.9 * w), round(y + 0.9 * h)
    return x0, y0, min(width, max(x1, x0 + 2)), min(height, max(y1, y0 + 2))


def report_boxes(report: dict[str, Any], data: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Detections (x0, y0, x1, y1, score) per image path relative to faces-dev."""
    root = (data / "faces-dev").resolve()
    result = {}
    for entry in report["files"]:
        records = entry.get("frame_records") or []
        record = records if isinstance(records, dict) else (records[0] if records else {"faces": []})
        faces = [[*f["box"], f["score"]] for f in record["faces"]]
        rel = str(Path(entry["source"]).resolve().relative_to(root))
        result[rel] = np.asarray(faces, np.float32).reshape(-1, 5)
    return result


def find_misses(
    data: Path, out: Path, min_height: float, veil: VeilSettings, found: dict[str, npt.NDArray[np.float32]]
) -> list[Miss]:
    """Every counted face at least min_height tall whose detail survived veilwatch's output."""
    annotations = json.loads((out / "annotations-all.json").read_text())
    misses = []
    for entry in annotations["images"]:
        faces = [f for f in entry["faces"] if not f.get("invalid") and f["h"] >= max(8.0, min_height)]
        if not faces:
            continue
        rel = entry["file"]
        a, b = grey(data / "faces-dev" / rel), grey(out / "veilwatch" / rel)
        dets = found.get(rel, np.zeros((0, 5), np.float32))
        veils = veil_areas(dets[:, :4], veil)
        for face in faces:
            x, y, w, h = (float(face[k]) for k in ("x", "y", "w", "h"))
            x0, y0, x1, y1 = inner_box(x, y, w, h, a.shape[1], a.shape[0])
            detail = detail_survival(a[y0:y1, x0:x1], b[y0:y1, x0:x1], h)
            if detail < DETAIL_LIMIT:
                continue
            inner = np.asarray([[x0, y0, x1, y1]], np.float32)
            ious = iou_matrix(np.asarray([[x, y, x + w, y + h]], np.float32), dets[:, :4])[0]
            best = int(np.argmax(ious)) if len(dets) else -1
            covered = float(coverage(inner, veils)[0].max()) if len(dets) else 0.0
            kind = "undetected" if covered < 0.3 else "under-covered" if covered < 0.95 else "covered"
            misses.append(
                Miss(
                    rel,
                    (x, y, w, h),
                    detail,
                    float(ious[best]) if best >= 0 else 0.0,
                    float(dets[best, 4]) if best >= 0 else None,
                    covered,
                    kind,
                )
            )
    return misses


def write_crop(miss: Miss, dets: npt.NDArray[np.float32], data: Path, out: Path, folder: Path) -> Path:
    """Original (face green, detections red) beside the output, around one missed face."""
    original = np.asarray(Image.open(data / "faces-dev" / miss.file).convert("RGB"))[:, :, ::-1].copy()
    veiled = np.asarray(Image.open(out / "veilwatch" / miss.file).convert("RGB"))[:, :, ::-1].copy()
    x, y, w, h = (round(v) for v in miss.box)
    m = max(w, h)
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(original.shape[1], x + w + m), min(original.shape[0], y + h + m)
    marked = original.copy()
    cv2.rectangle(marked, (x, y), (x + w, y + h), (0, 255, 0), 1)
    for bx0, by0, bx1, by1, score in dets:
        if bx1 > x0 and bx0 < x1 and by1 > y0 and by0 < y1:
            cv2.rectangle(marked, (int(bx0), int(by0)), (int(bx1), int(by1)), (0, 0, 255), 1)
            cv2.putText(marked, f"{score:.2f}", (int(bx0), int(by0) + 8), cv2.FONT_HERSHEY_PLAIN, 0.6, (0, 0, 255))
    both = np.concatenate([marked[y0:y1, x0:x1], veiled[y0:y1, x0:x1]], axis=1)
    zoom = 300 / both.shape[0]
    both = cv2.resize(both, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(miss.file).stem}_{x}_{y}.png"
    cv2.imwrite(str(path), both)
    return path


def main(argv: list[str] | None = None) -> int:
    """Print the missed faces and their kinds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="accuracy.py's output folder")
    parser.add_argument("--min-height", type=float, default=32.0, help="only faces at least this tall (px)")
    parser.add_argument("--crops", type=Path, help="write a PNG of each miss into this folder")
    args = parser.parse_args(argv)
    if not (args.out / "veilwatch.json").is_file():
        print(f"no veilwatch run in {args.out}: run bench/accuracy.py --tool veilwatch first", file=sys.stderr)
        return 2
    report = json.loads((args.out / "veilwatch.json").read_text())
    found = report_boxes(report, args.data)
    misses = find_misses(args.data, args.out, args.min_height, VeilSettings(**report["settings"]["veil"]), found)
    for miss in misses:
        score = "-" if miss.best_score is None else f"{miss.best_score:.2f}"
        x, y, w, h = miss.box
        print(
            f"{miss.bucket:>5}  {miss.kind:13}  detail {miss.detail:.2f}  covered {miss.covered:.2f}  "
            f"best IoU {miss.best_iou:.2f} (score {score})  {miss.file} {x:.0f},{y:.0f} {w:.0f}×{h:.0f}"
        )
        if args.crops:
            write_crop(miss, found[miss.file], args.data, args.out, args.crops)
    counts = Counter((m.bucket, m.kind) for m in misses)
    for _, _, bucket in BUCKETS:
        kinds = {kind: n for (b, kind), n in counts.items() if b == bucket}
        if kinds:
            print(f"{bucket}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
