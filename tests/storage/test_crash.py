"""kill -9 in the middle of a recording: the index is whole again after heal()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import av

from tests.helpers import REPO_ROOT
from veilwatch.storage import Database, SegmentIndex

FPS = 25
SEGMENT_FRAMES = 100  # 4 s at 25 fps
KILL_AFTER = 2 * SEGMENT_FRAMES + 60  # 2.4 s into the third segment: two whole 1 s fragments in it

RECORDING = f"""
import sys, time
from pathlib import Path
from tests.storage.builders import frame
from veilwatch.storage import Database, SegmentIndex, SegmentRecorder

data = Path(sys.argv[1])
db = Database.open(data / "veilwatch.db")
index = SegmentIndex(db, data)
recorder = SegmentRecorder("gate", data, index, fps={FPS}, width=64, height=48, segment_seconds={SEGMENT_FRAMES / FPS})
for n in range(100_000):
    recorder.write(frame(n), 1_700_000_000.0 + n / {FPS})
    print(n, recorder.segment_id, flush=True)
    time.sleep(0.002)
"""


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_recording_killed_mid_segment_is_healed(data_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", RECORDING, str(data_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    ) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if int(line.split()[0]) >= KILL_AFTER:
                    break
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with Database.open(data_dir / "veilwatch.db") as db:
        index = SegmentIndex(db, data_dir)
        report = index.heal()
        segments = index.list("gate", 0, 2e9)
        files = {p.relative_to(data_dir).as_posix() for p in (data_dir / "recordings").rglob("*")}
        assert {s.path for s in segments} == {f for f in files if f.endswith(".mp4")}
        for segment in segments:
            assert segment.status == "complete"
            assert _frames(index.absolute(segment.path)) == segment.frames
        # The finished segments are whole; of the one being written, only its torn last fragment is lost.
        whole, cut = segments[:-1], segments[-1]
        assert len(whole) >= 2 and all(s.frames == SEGMENT_FRAMES for s in whole)
        assert report.finished == (cut.id,)
        assert cut.frames >= FPS and cut.end_at is not None and cut.end_at - cut.start_at >= 1.0
        assert not index.heal().changed
