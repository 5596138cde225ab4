"""CenterFace on ONNX Runtime: one network pass over one image, decoded into face boxes.

The shipped `centerface.onnx` is an old (opset 9) export whose ~190 weight tensors are also listed
as graph *inputs*. ONNX Runtime must then treat every weight as something a caller could
override, so it cannot fold batch norms into convolutions or pre-pack weights; on this project's
2-core machine that costs about half the run time. We fix the graph in memory before loading it:
weights become constants, the input size becomes dynamic, and the landmark head (which we never
use) is cut off. See bench/README.md for the measurement.

A compatible model (``--model PATH``) takes a float32 NCHW RGB image in 0..255 whose sides are
multiples of 32 and returns, at stride 4, a heatmap (1 channel), log-scales (2) and offsets (2):
the CenterFace output convention.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from veilwatch.boxes import Detections
from veilwatch.detection.model_files import ModelFile
from veilwatch.detection.quantize import quantized_model
from veilwatch.errors import ModelError

STRIDE = 4
ALIGN = 32

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    """How ONNX Runtime runs the model."""

    threads: int = 0  # 0: one per CPU core
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "int8"  # int8 | fp32 (int8 only on the CPU)


def _prepared_model_bytes(model: ModelFile) -> bytes:
    """The model with weights as constants, dynamic input size and only the three box heads."""
    import onnx
    from onnx import utils as onnx_utils

    try:
        graph_model = onnx.load(str(model.path))
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {model.path}: {exc}") from exc
    graph = graph_model.graph
    weights = {init.name for init in graph.initializer}
    real_inputs = [inp for inp in graph.input if inp.name not in weights]
    if len(real_inputs) != 1 or len(graph.output) < 3:
        raise ModelError(
            f"{model.path} is not a CenterFace-compatible model: expected 1 image input and "
            f"heatmap/scale/offset outputs, found {len(real_inputs)} inputs and {len(graph.output)} outputs"
        )
    del graph.input[:]
    graph.input.extend(real_inputs)
    input_name = graph.input[0].name
    dims = graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ["batch", "channels", "height", "width"], strict=False):
        if name != "channels":
            dim.ClearField("dim_value")
            dim.dim_param = name
    outputs = [out.name for out in graph.output[:3]]
    for out in graph.output:
        for dim in out.type.tensor_type.shape.dim:
            dim.ClearField("dim_value")
            dim.ClearField("dim_param")
    try:
        pruned = onnx_utils.Extractor(graph_model).extract_model([input_name], outputs)
    except Exception as exc:
        raise ModelError(f"cannot prepare ONNX model {model.path}: {exc}") from exc
    return bytes(pruned.SerializeToString())


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelError(f"CUDA was requested but ONNX Runtime offers only {available}")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class CenterFace:
    """The CenterFace network: `run` takes a padded RGB image and returns its raw face boxes."""

    def __init__(self, model: ModelFile, options: RuntimeOptions = RuntimeOptions()) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = options.threads or (os.cpu_count() or 1)
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle inference threads sleep instead of spinning: decode and encode threads need the cores.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = _providers(options.device)
        graph: bytes | str
        self.precision = "fp32"
        self.derived: ModelFile | None = None  # the int8 file actually loaded, if any
        if options.precision == "int8" and providers[0] == "CPUExecutionProvider":
            # Prepared (and checked) only when the int8 file is not cached yet: it was checked when made.
            self.derived = quantized_model(model, lambda: _prepared_model_bytes(model))
            self.precision = "int8"
            graph = str(self.derived.path)
        else:
            graph = _prepared_model_bytes(model)
        try:
            self._session = ort.InferenceSession(graph, session_options, providers=providers)
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {model.path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.model = model
        self.provider = self._session.get_providers()[0]

    def run(self, image: npt.NDArray[np.uint8], threshold: float) -> Detections:
        """Faces in an RGB uint8 image whose sides are multiples of 32, in that image's pixels."""
        height, width = image.shape[:2]
        if height % ALIGN or width % ALIGN:
            raise ValueError(f"CenterFace input must have sides divisible by {ALIGN}, got {width}×{height}")
        blob = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        heatmap, log_scale, offset = self._session.run(self._outputs, {self._input: blob})
        return decode(heatmap, log_scale, offset, threshold)

    def describe(self) -> dict[str, Any]:
        """Model and runtime facts for reports."""
        facts = {"model": str(self.model.path), "origin": self.model.origin, "provider": self.provider}
        facts["precision"] = self.precision
        if self.derived is not None:
            facts["loaded"] = str(self.derived.path)
        return facts


def decode(
    heatmap: npt.NDArray[np.float32],
    log_scale: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    threshold: float,
) -> Detections:
    """Boxes of every heatmap cell above threshold (no suppression yet)."""
    ys, xs = np.nonzero(heatmap[0, 0] > threshold)
    if len(ys) == 0:
        return Detections()
    box_h = np.exp(log_scale[0, 0, ys, xs]) * STRIDE
    box_w = np.exp(log_scale[0, 1, ys, xs]) * STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1)
    return Detections(boxes, heatmap[0, 0, ys, xs])
