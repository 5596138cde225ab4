"""The video loop, once for whole files and parts of files: decode → detect and track → veil → encode.

Four overlapping stages: decode (background thread) → detect and track (the caller's thread; ONNX
Runtime uses its own worker threads) → veil (background thread) → encode (background thread).
Frames reach the encoder only through the veil stage. Any error stops every stage and is raised
in the caller's thread, which discards the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from veilwatch.frames import Frame
from veilwatch.pipeline.report import StreamReport
from veilwatch.pipeline.threads import BackgroundConsumer, prefetch
from veilwatch.pipeline.veiler import FrameVeiler, PlannedFrame

QUEUE_DEPTH = 8


def veil_stream(
    frames: Callable[[], Iterator[Frame]],
    veiler: FrameVeiler,
    encode: Callable[[Frame], None],
    report: StreamReport,
    progress: Callable[[int], None],
    keep: range | None = None,
) -> int:
    """Veil every frame of `frames()` and `encode` those whose index is in `keep` (all: None); how many were.

    `progress(n)` runs after the n-th kept frame is handed to the veil stage. A part of a file
    decodes warm-up and look-ahead frames around its own: they are searched and tracked, never veiled or encoded.
    """
    encoder: BackgroundConsumer[Frame] = BackgroundConsumer(encode, QUEUE_DEPTH, "veilwatch-encode")

    def veil(planned: PlannedFrame) -> None:
        veiled = veiler.apply(planned)
        report.add(veiled)
        encoder.put(veiled.frame)

    veils: BackgroundConsumer[PlannedFrame] = BackgroundConsumer(veil, QUEUE_DEPTH, "veilwatch-veil")
    count = 0

    def emit(planned: list[PlannedFrame]) -> None:
        nonlocal count
        for frame in planned:
            if keep is None or frame.frame.index in keep:
                veils.put(frame)
                count += 1
                progress(count)

    try:
        for frame in prefetch(frames, QUEUE_DEPTH, "veilwatch-decode"):
            emit(veiler.plan(frame))
        emit(veiler.plan_rest())
        veils.close()
        encoder.close()
    except BaseException:
        veils.abort()
        encoder.abort()
        raise
    return count
