"""Live benchmark: how many cameras one process veils in real time, and whether any face got through.

Starts N synthetic cameras (`demo:walkers`, 1280x720 at 10 fps, 6 faces of 24–100 px each, one
seed per camera) sharing one Engine built as `veilwatch serve` builds it (one inference thread,
`--min-face`, `--full-scan-seconds`), each with its own CameraPipeline (capture and veil threads, queue of 2 that drops
the oldest, deadline 0.5 s). After `--warmup` seconds it measures for `--seconds`:

* fps in / out: frames captured / veiled frames published, per camera, per second;
* latency p99: capture to publication (ms), over the published frames of the window;
* detector mean / p99: time in FrameVeiler.push (detect, track, veil), ms;
* drops: frames dropped from the full queue, as a share of frames captured; withheld: frames not
  veiled within the deadline (placeholder published instead), as a share of frames captured;
* privacy: a viewer per camera keeps every `--sample`-th published JPEG; afterwards each is
  decoded and every ground-truth face in it is scored with veil_check.py's measure (high-pass
  detail correlation with the raw frame, inner 80 % of the box); >= 0.3 counts as shown.

With `--record`, each camera also records what `veilwatch serve` records: veiled 10-second H.264
segments (the real recorder, SQLite index, a temporary data folder); with `--vault` as well, the raw
face regions are sealed too, as with a configured key vault (a throw-away 2-of-3 vault).

Run from the repository root, with the project's virtualenv active (the machine otherwise idle):
    python bench/live.py --cameras 1 2 4 --seconds 30 [--record [--vault]]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from common import detail_survival
from PIL import Image

from veilwatch.config import LIVE_ENGINE, ServerConfig
from veilwatch.live.pipeline import CameraPipeline, CameraStats, PublishedFrame
from veilwatch.pipeline.engine import Engine
from veilwatch.room.cameras import RecorderSink
from veilwatch.settings import AnonymizeSettings, LiveSettings
from veilwatch.sources.demo import DemoSource
from veilwatch.storage.db import Database
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sealed_faces import FaceChunkWriter, SealedFaceStore
from veilwatch.vault.bundle import HolderSpec, KdfParams, create_vault
from veilwatch.vault.sealing import seal

VEILED = 0.3


@dataclass(frozen=True)
class CameraResult:
    """One camera's figures over the measured window."""

    camera: str
    fps_in: float
    fps_out: float
    latency_p99_ms: float
    detector_mean_ms: float
    detector_p99_ms: float
    drop_share: float
    withheld_share: float
    faces_checked: int
    faces_shown: int


class Viewer:
    """Follows one camera like a browser would, keeping every n-th published frame."""

    def __init__(self, pipeline: CameraPipeline, every: int) -> None:
        self.kept: list[PublishedFrame] = []
        self._pipeline, self._every = pipeline, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq, count = -1, 0
        while not self._stop.is_set():
            frame = self._pipeline.wait_next(seq, 0.5)
            if frame is None:
                continue
            seq = frame.seq
            count += 1
            if not frame.withheld and count % self._every == 0:
                self.kept.append(frame)

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(5)


def faces_shown(demo: DemoSource, frames: list[PublishedFrame]) -> tuple[int, int]:
    """(faces checked, faces whose detail survived) over the kept frames."""
    checked = shown = 0
    for frame in frames:
        bgr = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        out = np.asarray(bgr, np.float64)
        raw = np.asarray(Image.fromarray(demo.frame(frame.source_seq)).convert("L"), np.float64)
        for x0, y0, x1, y1 in demo.ground_truth(frame.source_seq):
            w, h = x1 - x0, y1 - y0
            ix0, iy0, ix1, iy1 = round(x0 + 0.1 * w), round(y0 + 0.1 * h), round(x0 + 0.9 * w), round(y0 + 0.9 * h)
            checked += 1
            shown += detail_survival(raw[iy0:iy1, ix0:ix1], out[iy0:iy1, ix0:ix1], h) >= VEILED
    return checked, shown


class Recording:
    """What `veilwatch serve` adds per camera: a recorder sink (and, with a vault, sealed raw faces)."""

    def __init__(self, vault: bool, preset: str) -> None:
        self.preset = preset
        self.folder = tempfile.TemporaryDirectory(prefix="veilwatch-live-bench-")
        data = Path(self.folder.name)
        self.db = Database.open(data / "veilwatch.sqlite3")
        self.segments = SegmentIndex(self.db, data)
        self.faces = SealedFaceStore(self.db, data)
        self.sinks: list[RecorderSink] = []
        self.vault = None
        if vault:
            holders = [HolderSpec(n, f"bench passphrase {n}") for n in ("ana", "ben", "chi")]
            light = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
            self.vault = create_vault(holders, 2, datetime.now(UTC).date(), days=2, kdf=light)[0]

    def sink(self, name: str) -> RecorderSink:
        """A recorder sink for one camera, as open_room builds it."""
        recorder = SegmentRecorder(name, Path(self.folder.name), self.segments, 10.0, 1280, 720, preset=self.preset)
        faces = None
        if self.vault is not None:
            vault = self.vault
            faces = FaceChunkWriter(name, self.faces, lambda day, data, ad: seal(data, vault.epoch_key(day), ad))
        made = RecorderSink(recorder, name, faces)
        self.sinks.append(made)
        return made

    def close(self) -> None:
        """Finish the recordings and remove them."""
        for made in self.sinks:
            made.close()
        self.db.close()
        self.folder.cleanup()


def measure(
    engine: Engine, cameras: int, warmup: float, seconds: float, sample: int, recording: Recording | None
) -> list[CameraResult]:
    """Run `cameras` demo cameras on one engine and return each one's figures."""
    demos = [DemoSource(seed=i, people=6) for i in range(cameras)]
    keep = recording is not None and recording.vault is not None
    sinks = [recording.sink(f"cam{i}") if recording is not None else None for i in range(cameras)]
    pipelines = [
        CameraPipeline(
            f"cam{i}",
            demo,
            engine,
            LiveSettings(),
            [sink] if sink is not None else [],
            raw_faces=sink.seal if sink is not None and keep else None,
        )
        for i, (demo, sink) in enumerate(zip(demos, sinks, strict=True))
    ]
    for pipeline in pipelines:
        pipeline.start()
    try:
        time.sleep(warmup)
        before = [p.stats() for p in pipelines]
        viewers = [Viewer(p, sample) for p in pipelines]
        cpu0, t0 = os.times(), time.monotonic()
        time.sleep(seconds)
        after = [p.stats() for p in pipelines]
        cpu1, elapsed = os.times(), time.monotonic() - t0
        for viewer in viewers:
            viewer.close()
    finally:
        for pipeline in pipelines:
            pipeline.stop()
    busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    print(f"  {cameras} camera(s): process CPU {busy:.2f} cores")
    results = []
    for demo, pipeline, viewer, b, a in zip(demos, pipelines, viewers, before, after, strict=True):
        checked, shown = faces_shown(demo, viewer.kept)
        results.append(window(pipeline.name, b, a, elapsed, checked, shown))
    return results


def window(name: str, b: CameraStats, a: CameraStats, elapsed: float, checked: int, shown: int) -> CameraResult:
    """The figures of one camera between two stats snapshots."""
    frames_in = max(1, a.frames_in - b.frames_in)
    return CameraResult(
        camera=name,
        fps_in=(a.frames_in - b.frames_in) / elapsed,
        fps_out=(a.published - b.published) / elapsed,
        latency_p99_ms=a.latency_ms_p99,
        detector_mean_ms=a.detector_ms_mean,
        detector_p99_ms=a.detector_ms_p99,
        drop_share=(a.dropped - b.dropped) / frames_in,
        withheld_share=(a.withheld - b.withheld) / frames_in,
        faces_checked=checked,
        faces_shown=shown,
    )


def main() -> None:
    """Parse arguments, run each camera count, print a table (and JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    live = LIVE_ENGINE.detector  # what `veilwatch serve` uses
    parser.add_argument("--min-face", type=float, default=live.min_face)
    parser.add_argument("--full-scan-seconds", type=float, default=live.full_scan_seconds)
    parser.add_argument("--sample", type=int, default=5, help="check every n-th published frame for faces")
    parser.add_argument("--record", action="store_true", help="also record, as veilwatch serve does")
    parser.add_argument("--vault", action="store_true", help="with --record: also seal the raw faces")
    parser.add_argument("--record-preset", default=ServerConfig().record_preset, help="x264 preset of the recordings")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    detector = live.model_copy(update={"min_face": args.min_face, "full_scan_seconds": args.full_scan_seconds})
    engine = Engine(AnonymizeSettings(detector=detector))
    report: dict[str, list[dict[str, object]]] = {}
    print("cameras camera fps_in fps_out lat_p99_ms det_mean_ms det_p99_ms drops withheld faces shown")
    for count in args.cameras:
        recording = Recording(args.vault, args.record_preset) if args.record else None
        try:
            results = measure(engine, count, args.warmup, args.seconds, args.sample, recording)
        finally:
            if recording is not None:
                recording.close()
        report[str(count)] = [asdict(r) for r in results]
        for r in results:
            print(
                f"{count:7d} {r.camera:6s} {r.fps_in:6.1f} {r.fps_out:7.1f} {r.latency_p99_ms:10.0f} "
                f"{r.detector_mean_ms:11.0f} {r.detector_p99_ms:10.0f} {r.drop_share:5.1%} "
                f"{r.withheld_share:8.1%} {r.faces_checked:5d} {r.faces_shown:5d}"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
