"""Does the video fast path veil every face an exhaustive search finds? Measured on real clips.

For each clip in ../shared/data/videos, two passes of the same engine:

- reference: every tile of every pyramid level searched on every frame (`full_scan_seconds=0`),
  no look-back and no hold-over (the detector alone);
- default: the settings `veilwatch anonymize` uses (scan schedule, tracker, look-back).

With `--live`, the pass under test is a live camera's (`veilwatch serve`'s detector settings: faces
from 16 px, no look-back, the motion search) and the reference searches at the same smallest face.
The reference pass is cached in bench/out/video_recall/ (per clip, settings and score), so that a
pass of another version of veilwatch (run this script with it on PYTHONPATH) meets the same one.

Every face the reference finds with score ≥ `--min-score` (default 0.5: confident faces only) is
checked against the default pass's veils in the same frame: it counts as veiled when one veil
region covers ≥ 90% of its box. Printed per clip: reference faces, share veiled by the default
pass, the longest run of consecutive frames with some reference face unveiled, and the detector
CPU cost of both passes (network megapixels per frame and seconds).

Run: python bench/video_recall.py [--clips hamilton facenet] [--resolutions native 720p] [--live]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from veilwatch.boxes import FloatArray, coverage
from veilwatch.config import LIVE_ENGINE
from veilwatch.media.video import VideoReader
from veilwatch.pipeline.engine import Engine
from veilwatch.redaction.veils import veil_areas
from veilwatch.settings import AnonymizeSettings, DetectorSettings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
COVERED = 0.9
RESOLUTIONS = {"720p": "1280x720", "1080p": "1920x1080"}


@dataclass
class PassResult:
    """Per-frame boxes of one pass and what it cost."""

    boxes: list[FloatArray]  # reference: detections; default: veil regions
    seconds: float
    frames: int


def run_pass(engine: Engine, clip: Path, *, reference: bool, min_score: float, live: bool = False) -> PassResult:
    """Run the engine over a clip without encoding; collect per-frame boxes."""
    started = time.process_time()
    per_frame: list[FloatArray] = []
    with VideoReader(clip) as reader:
        info = reader.info
        veiler = engine.video_veiler(info.rate, info.width, info.height, live=reference or live)
        for frame in reader.frames():
            for done in veiler.push(frame):
                per_frame.append(_boxes(done.detections, done.held, reference, min_score, engine))
        for done in veiler.finish():
            per_frame.append(_boxes(done.detections, done.held, reference, min_score, engine))
    return PassResult(per_frame, time.process_time() - started, len(per_frame))


def _boxes(detections: object, held: object, reference: bool, min_score: float, engine: Engine) -> FloatArray:
    from veilwatch.boxes import Detections

    assert isinstance(detections, Detections) and isinstance(held, Detections)
    if reference:
        return detections.boxes[detections.scores >= min_score]
    veiled = np.concatenate([detections.boxes, held.boxes])
    return veil_areas(veiled, engine.settings.veil)


def cached_reference(engine: Engine, clip: Path, min_score: float) -> PassResult:
    """The reference pass of a clip, from bench/out/video_recall/ when it was run before with these settings."""
    detector = engine.settings.detector
    key = f"{clip.stem}-min{detector.min_face:g}-up{detector.max_upscale:g}-thr{detector.threshold:g}-s{min_score:g}"
    path = REPO / "bench" / "out" / "video_recall" / f"{key}.npz"
    if path.exists():
        saved = np.load(path)
        count = int(saved["frames"])
        return PassResult([saved[f"f{i}"] for i in range(count)], float(saved["seconds"]), count)
    result = run_pass(engine, clip, reference=True, min_score=min_score)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"f{i}": boxes for i, boxes in enumerate(result.boxes)}
    np.savez_compressed(path, frames=result.frames, seconds=result.seconds, **arrays)  # type: ignore[arg-type]
    return result


def compare(reference: PassResult, default: PassResult) -> dict[str, float]:
    """Share of reference faces veiled by the default pass, and the longest unveiled run."""
    faces = veiled = 0
    run = worst = 0
    for ref, veils in zip(reference.boxes, default.boxes, strict=True):
        missed = 0
        if len(ref):
            cover = coverage(ref, veils).max(axis=1) if len(veils) else np.zeros(len(ref))
            faces += len(ref)
            veiled += int((cover >= COVERED).sum())
            missed = int((cover < COVERED).sum())
        run = run + 1 if missed else 0
        worst = max(worst, run)
    return {"faces": faces, "veiled": veiled / faces if faces else 1.0, "longest_unveiled_run": worst}


def clip_paths(names: list[str] | None, resolutions: list[str]) -> list[tuple[str, str, Path]]:
    """The shared clips (native) and the speed benchmark's resized copies, if made."""
    found = []
    for path in sorted((DATA / "videos").glob("*.mp4")):
        key = path.stem.split("-")[0]
        if names and not any(n in path.stem for n in names):
            continue
        for res in resolutions:
            if res == "native":
                candidate = path
            else:
                candidate = REPO / "bench" / "out" / "clips" / f"{path.stem}-{RESOLUTIONS[res]}.mp4"
            if candidate.exists():
                found.append((key, res, candidate))
    return found


def main() -> None:
    """Compare the default pass with the exhaustive one on each clip and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", help="substrings of clip names (default: all)")
    parser.add_argument("--resolutions", nargs="*", default=["native"], help="native, 720p, 1080p")
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--full-scan-seconds", type=float, default=DetectorSettings().full_scan_seconds)
    parser.add_argument("--live", action="store_true", help="test a live camera's pass (serve's detector settings)")
    parser.add_argument("--json", type=Path, help="save the results here")
    args = parser.parse_args()

    if args.live:  # as serve runs it, with all cores: threads change the speed, not the faces
        tested = LIVE_ENGINE.detector.model_copy(update={"threads": 0})
    else:
        tested = DetectorSettings(full_scan_seconds=args.full_scan_seconds)
    default_engine = Engine(AnonymizeSettings(detector=tested))
    reference_engine = Engine(
        AnonymizeSettings(detector=DetectorSettings(full_scan_seconds=0, min_face=tested.min_face))
    )
    rows = []
    header = f"{'clip':<28}{'res':>7}{'frames':>8}{'faces':>8}{'veiled':>9}{'run':>5}{'ref s':>8}{'default s':>11}"
    print(header)
    for key, res, path in clip_paths(args.clips, args.resolutions):
        reference = cached_reference(reference_engine, path, args.min_score)
        default = run_pass(default_engine, path, reference=False, min_score=args.min_score, live=args.live)
        result = compare(reference, default)
        row = {"clip": path.name, "resolution": res, "frames": reference.frames, **result}
        row |= {"reference_cpu_s": round(reference.seconds, 1), "default_cpu_s": round(default.seconds, 1)}
        rows.append(row)
        print(
            f"{path.stem[:27]:<28}{res:>7}{reference.frames:>8}{result['faces']:>8}{result['veiled']:>9.4f}"
            f"{result['longest_unveiled_run']:>5}{reference.seconds:>8.1f}{default.seconds:>11.1f}",
            flush=True,
        )
        del key
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
