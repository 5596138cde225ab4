"""An 8-bit version of the face model, made locally from the shipped weights and cached.

Static int8 quantization (QDQ, per-channel weights) lets ONNX Runtime use the CPU's integer
dot-product instructions (VNNI/AMX on recent x86): about 1.6× faster inference on this project's
machine, at the same measured recall (bench/README.md). Nothing is downloaded: the scale of each
activation is calibrated on public-domain pictures that scikit-image ships (the astronaut
portrait, a cat, coffee, a rocket launch) and on frames of veilwatch's own sample video, at
several sizes. The result is cached under the user's cache folder, keyed by the SHA-256 of the
source model and the recipe version, so it is made once per machine (about half a minute).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veilwatch.detection.model_files import ModelFile
from veilwatch.errors import ModelError

RECIPE = "qdq-u8s8-perchannel-minmax-v1"
OPSET = 13  # per-channel QDQ needs DequantizeLinear with an axis
CALIBRATION_SIZES = ((640, 384), (960, 544))


def cache_dir() -> Path:
    """Where derived models are kept: $VEILWATCH_CACHE, else $XDG_CACHE_HOME/veilwatch."""
    explicit = os.environ.get("VEILWATCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "veilwatch"


def quantized_model(source: ModelFile, prepare: Callable[[], bytes]) -> ModelFile:
    """The int8 model for `source`, made from its prepared fp32 graph (`prepare()`) and cached if missing."""
    digest = hashlib.sha256(source.path.read_bytes() + RECIPE.encode()).hexdigest()[:24]
    target = cache_dir() / f"{source.path.stem}-int8-{digest}.onnx"
    if not target.is_file():
        _quantize(prepare(), target)
    return ModelFile(target, f"int8 of {source.origin}")


def _calibration_images() -> Iterator[npt.NDArray[np.uint8]]:
    from skimage import data

    from veilwatch.media.samples import WALKERS, astronaut_head, scene, walkers_frame

    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]  # type: ignore[no-untyped-call]
    backdrop, head = scene(960, 540), astronaut_head()
    pictures += [walkers_frame(i, 5, 960, 540, backdrop, head) for i in range(len(WALKERS) + 2)]
    for picture in pictures:
        for width, height in CALIBRATION_SIZES:
            yield np.asarray(cv2.resize(np.asarray(picture, np.uint8), (width, height)), np.uint8)


def _quantize(prepared: bytes, target: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            self._name = name
            self._images = _calibration_images()

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            image = next(self._images, None)
            if image is None:
                return None
            return {self._name: np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32)}

    model = version_converter.convert_version(onnx.load_from_string(prepared), OPSET)
    input_name = model.graph.input[0].name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        raw = Path(work) / "raw.onnx"
        onnx.save(model, str(raw))
        fp32 = Path(work) / "fp32.onnx"
        part = Path(work) / "int8.onnx"
        try:
            # Folds batch norms into convolutions first, so that they are quantized together.
            quant_pre_process(str(raw), str(fp32), skip_symbolic_shape=True)
            quantize_static(
                str(fp32),
                str(part),
                _Reader(input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:
            raise ModelError(f"cannot quantize the face model: {exc}") from exc
        os.replace(part, target)  # atomic: concurrent makers race harmlessly
