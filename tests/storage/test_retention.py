"""Retention by age and size, and eviction when the disk fills: always the oldest first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.storage.builders import frame, noise
from veilwatch.errors import ConfigError
from veilwatch.storage import Database, RetentionPolicy, SegmentIndex, SegmentRecorder, enforce, free_space
from veilwatch.storage.recordings import segment_path

T0 = 1_700_000_000.0


def _segment(index: SegmentIndex, camera: str, start_at: float, size: int, seconds: float = 10.0) -> int:
    """A finished segment of `size` bytes (the bytes are not video: retention never looks inside)."""
    rel = segment_path(camera, start_at)
    segment_id = index.add_writing(camera, rel, start_at)
    path = index.absolute(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    index.finish(segment_id, start_at + seconds, size, 250)
    return segment_id


def test_segments_older_than_max_age_go_oldest_first(index: SegmentIndex) -> None:
    gate = [_segment(index, "gate", T0 + 10 * n, 100) for n in range(6)]
    hall = [_segment(index, "hall", T0 + 10 * n, 100) for n in range(6)]
    writing = index.add_writing("gate", segment_path("gate", T0 + 60), T0 + 60)
    # now = T0 + 70: gate keeps what ended in the last 35 s; hall has no policy.
    deleted = enforce(index, {"gate": RetentionPolicy(max_age_s=35)}, now=T0 + 70)
    assert deleted == gate[:3]
    assert [s.id for s in index.list("gate", 0, 2e9)] == [*gate[3:], writing]
    assert len(index.list("hall", 0, 2e9)) == len(hall)
    assert enforce(index, {"gate": RetentionPolicy(max_age_s=35)}, now=T0 + 70) == []


def test_a_camera_over_max_bytes_loses_its_oldest_segments(index: SegmentIndex) -> None:
    gate = [_segment(index, "gate", T0 + 10 * n, 1000) for n in range(5)]
    _segment(index, "hall", T0 - 100, 1000)  # older, but another camera
    deleted = enforce(index, {"gate": RetentionPolicy(max_bytes=2500)}, now=T0 + 50)
    assert deleted == gate[:3]
    assert index.usage("gate") == 2000 and index.usage("hall") == 1000
    for segment_id in deleted:
        assert index.get(segment_id) is None


def test_age_and_size_together(index: SegmentIndex) -> None:
    gate = [_segment(index, "gate", T0 + 10 * n, 1000) for n in range(5)]
    deleted = enforce(index, {"gate": RetentionPolicy(max_age_s=1000, max_bytes=1000)}, now=T0 + 1040)
    assert deleted == gate[:4]  # gate[0] by age; gate[1:4] by size


@pytest.mark.parametrize(("fields", "message"), [({"max_age_s": 0}, "max_age_s"), ({"max_bytes": -1}, "max_bytes")])
def test_invalid_policies_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetentionPolicy(**fields)  # type: ignore[arg-type]


def test_free_space_evicts_oldest_of_any_camera_by_what_it_frees(small_disk: Path) -> None:
    with Database.open(small_disk / "veilwatch.db") as db:
        index = SegmentIndex(db, small_disk)
        ids = [_segment(index, camera, T0 + n, 300_000) for n, camera in enumerate(["gate", "hall", "gate", "hall"])]
        free = shutil.disk_usage(small_disk).free
        assert free_space(index, small_disk, free) == []
        assert free_space(index, small_disk, free + 400_000) == ids[:2]
        assert shutil.disk_usage(small_disk).free >= free + 400_000
        assert free_space(index, small_disk, 10**12) == ids[2:]  # asks too much: everything complete goes, then stops


def _consistent(index: SegmentIndex, data_dir: Path, writing: int | None = None) -> None:
    """Every file has a row; every row is complete and holds frames, but the one being written."""
    segments = [s for camera in ("gate", "hall") for s in index.list(camera, 0, 2e9)]
    files = {p.relative_to(data_dir).as_posix() for p in (data_dir / "recordings").rglob("*.mp4")}
    assert files == {s.path for s in segments}
    assert all(s.status == "complete" and s.frames > 0 for s in segments if s.id != writing)


RECORDER = {"fps": 25, "width": 160, "height": 120, "segment_seconds": 1000.0, "min_free_bytes": 100_000}


def test_a_full_disk_evicts_the_oldest_footage_and_keeps_the_interrupted_segment(small_disk: Path) -> None:
    with Database.open(small_disk / "veilwatch.db") as db:
        index = SegmentIndex(db, small_disk)
        with SegmentRecorder("hall", small_disk, index, **RECORDER) as hall:  # type: ignore[arg-type]
            for n in range(25):
                hall.write(noise(n), T0 + n / 25)
        (old,) = index.list("hall", 0, 2e9)
        with SegmentRecorder("gate", small_disk, index, **RECORDER) as gate:  # type: ignore[arg-type]
            n = 0
            while gate.dropped == 0 and n < 2000:
                gate.write(noise(1000 + n), T0 + 10 + n / 25)
                n += 1
            assert gate.dropped == 1 and gate.segment_id is None
            assert index.get(old.id) is None  # evicted, being the oldest
            (interrupted,) = index.list("gate", 0, 2e9)
            assert interrupted.status == "complete" and 25 <= interrupted.frames < n
            _consistent(index, small_disk)
            for m in range(30):  # the next frame starts a new segment
                gate.write(frame(m, 160, 120), T0 + 100 + m / 25)
            assert gate.dropped == 1
        _consistent(index, small_disk)
        assert [s.frames for s in index.list("gate", 0, 2e9)] == [interrupted.frames, 30]


def test_a_disk_that_stays_full_loses_only_the_segment_being_written(small_disk: Path) -> None:
    with Database.open(small_disk / "veilwatch.db") as db:
        index = SegmentIndex(db, small_disk)
        with SegmentRecorder("gate", small_disk, index, **RECORDER) as gate:  # type: ignore[arg-type]
            for n in range(10):
                gate.write(frame(n, 160, 120), T0 + n / 25)
            writing = gate.segment_id
            ballast = small_disk / "ballast"  # something else fills the disk
            ballast.write_bytes(b"\0" * shutil.disk_usage(small_disk).free)
            for n in range(10, 100):
                gate.write(noise(n), T0 + n / 25)
            assert gate.dropped > 0 and gate.segment_id is None and writing is not None
            # Its file is gone; its row too, unless the database (on the same full disk) could not
            # be written either: then the row goes as soon as there is room, as here.
            assert not list((small_disk / "recordings").rglob("*.mp4"))
            ballast.unlink()
            for n in range(100, 160):  # recording resumes within a second once there is room
                gate.write(frame(n, 160, 120), T0 + n / 25)
            assert gate.segment_id is not None and index.get(writing) is None
            _consistent(index, small_disk, writing=gate.segment_id)
        _consistent(index, small_disk)
        (resumed,) = index.list("gate", 0, 2e9)
        assert resumed.start_at >= T0 + 100 / 25 and resumed.frames > 0
