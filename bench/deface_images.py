"""Run deface's own image path over a folder tree, mirroring it, and dump the boxes it veiled.

deface's CLI writes `<input>_anonymized.<ext>` next to each input when no `-o` is given and
cannot write a mirrored tree, so `bench/accuracy.py` drives deface through its Python API
instead, in a subprocess, with the CLI's default settings (threshold 0.2, blur, mask scale 1.3,
ellipse masks, no metadata). The detector is wrapped so that the boxes deface used for each image
are recorded from the very call `image_detect` makes: no second detection pass, no extra time.

Run (normally started by bench/accuracy.py):
    python bench/deface_images.py --root DATA/faces-dev --subdir images \
        --out bench/out/accuracy/deface-opencv --backend opencv --boxes bench/out/accuracy/deface-opencv.json
Writes OUT/<subdir>/<same relative path> for every image under ROOT/<subdir>, and a JSON file
{"backend": ..., "seconds": ..., "files": [{"file": "images/...", "boxes": [[x0, y0, x1, y1, score], ...]}]}
with file names relative to ROOT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

# deface 1.5.0 CLI defaults (deface --help).
THRESHOLD = 0.2
MASK_SCALE = 1.3


class RecordingDetector:
    """Calls deface's CenterFace and keeps the detections of the last call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: list[list[float]] = []

    def __call__(self, img: Any, threshold: float = 0.5) -> tuple[Any, Any]:
        dets, landmarks = self.inner(img, threshold=threshold)
        self.last = [[round(float(v), 2) for v in det[:5]] for det in dets]
        return dets, landmarks


def images_under(folder: Path) -> list[Path]:
    """Every image file below `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def run(root: Path, subdir: str, out: Path, backend: str) -> dict[str, Any]:
    """Veil every image under root/subdir into out/subdir; returns the boxes document."""
    from deface.centerface import CenterFace
    from deface.deface import image_detect

    started = time.perf_counter()
    detector = RecordingDetector(CenterFace(in_shape=None, backend=backend))
    files: list[dict[str, Any]] = []
    failures: list[str] = []
    for source in images_under(root / subdir):
        rel = source.relative_to(root)
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        detector.last = []
        try:
            image_detect(
                str(source),
                str(target),
                detector,
                threshold=THRESHOLD,
                replacewith="blur",
                mask_scale=MASK_SCALE,
                ellipse=True,
                draw_scores=False,
                enable_preview=False,
                keep_metadata=False,
            )
        except Exception as exc:  # report and go on, as a batch tool would
            failures.append(f"{rel.as_posix()}: {exc}")
            continue
        files.append({"file": rel.as_posix(), "boxes": detector.last})
    return {
        "backend": backend,
        "threshold": THRESHOLD,
        "seconds": round(time.perf_counter() - started, 3),
        "files": files,
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="data folder the file names are relative to")
    parser.add_argument("--subdir", default="images", help="folder under ROOT holding the images")
    parser.add_argument("--out", type=Path, required=True, help="output folder (mirrors ROOT)")
    parser.add_argument("--backend", choices=["opencv", "onnxrt"], required=True)
    parser.add_argument("--boxes", type=Path, required=True, help="where to write the boxes JSON")
    args = parser.parse_args()
    document = run(args.root, args.subdir, args.out, args.backend)
    args.boxes.parent.mkdir(parents=True, exist_ok=True)
    args.boxes.write_text(json.dumps(document))
    for failure in document["failures"]:
        print(f"deface failed on {failure}", file=sys.stderr)
    return 1 if document["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
