"""Recording: segments PyAV reads back, rotation, and repair of what a crash leaves."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import av
import pytest
from sqlalchemy import update

from tests.storage.builders import frame
from veilwatch.errors import ConfigError, StorageError
from veilwatch.storage import Database, Segment, SegmentIndex, SegmentRecorder
from veilwatch.storage.models import SegmentRow
from veilwatch.storage.recordings import segment_path

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
FPS = 25


def _read_back(path: Path) -> tuple[int, float, list[bool]]:
    """Frames, duration (s) and keyframe flags of a file, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    keys = [f.key_frame for f in frames]
    first, last = frames[0], frames[-1]
    assert first.time_base is not None and last.time_base is not None and last.pts is not None
    duration = float((last.pts + (last.duration or 0)) * last.time_base - (first.pts or 0) * first.time_base)
    return len(frames), duration, keys


def _record(index: SegmentIndex, data_dir: Path, times: list[float], **options: float) -> list[Segment]:
    with SegmentRecorder("gate", data_dir, index, fps=FPS, width=64, height=48, **options) as recorder:  # type: ignore[arg-type]
        for n, at in enumerate(times):
            recorder.write(frame(n), at)
    return index.list("gate", 0, 2e9)


def _consistent(index: SegmentIndex, data_dir: Path) -> list[Segment]:
    """Assert every row is complete and readable, and every file has a row; the rows."""
    segments = index.list("gate", 0, 2e9)
    for segment in segments:
        assert segment.status == "complete"
        frames, _, _ = _read_back(index.absolute(segment.path))
        assert frames == segment.frames
    files = {p.relative_to(data_dir).as_posix() for p in (data_dir / "recordings").rglob("*.mp4")}
    assert files == {s.path for s in segments}
    return segments


def test_segments_read_back_with_their_frames_and_duration(index: SegmentIndex, data_dir: Path) -> None:
    segments = _record(index, data_dir, [T0 + n / FPS for n in range(60)], segment_seconds=1.0)
    assert [s.frames for s in segments] == [25, 25, 10]
    assert [s.start_at for s in segments] == [T0, T0 + 1, T0 + 2]
    assert [s.end_at for s in segments] == [T0 + 1, T0 + 2, pytest.approx(T0 + 2.4)]
    assert segments[0].path == "recordings/gate/2023-11-14/22-13-20.000000.mp4"
    for segment in segments:
        path = index.absolute(segment.path)
        frames, duration, keys = _read_back(path)
        assert frames == segment.frames and segment.bytes == path.stat().st_size
        assert duration == pytest.approx(segment.frames / FPS, abs=1e-3)
        assert keys[0]
    assert index.usage("gate") == sum(s.bytes for s in segments) == index.usage()


def test_timestamps_follow_the_wall_clock_and_keyframes_come_every_second(index: SegmentIndex, data_dir: Path) -> None:
    # 10 fps, then a 0.5 s stall, then 20 fps: variable rate, as a live camera delivers.
    times = [T0 + n / 10 for n in range(20)] + [T0 + 2.5 + n / 20 for n in range(40)]
    (segment,) = _record(index, data_dir, times, segment_seconds=60.0)
    with av.open(str(index.absolute(segment.path))) as container:
        decoded = list(container.decode(video=0))
    seconds = [float(f.pts * f.time_base) for f in decoded if f.pts is not None and f.time_base is not None]
    assert seconds == pytest.approx([t - T0 for t in times], abs=1e-4)
    key_times = [s for s, f in zip(seconds, decoded, strict=True) if f.key_frame]
    assert max(b - a for a, b in zip(key_times, [*key_times, seconds[-1]][1:], strict=True)) <= 1.0 + 1e-6


def test_a_clock_jumping_back_starts_a_new_segment(index: SegmentIndex, data_dir: Path) -> None:
    segments = _record(index, data_dir, [T0, T0 + 0.04, T0 + 0.08, T0 - 5.0, T0 - 4.96], segment_seconds=10.0)
    assert [s.frames for s in segments] == [2, 3]
    assert len({s.path for s in segments}) == 2


def test_odd_sizes_wrong_frames_and_bad_settings(index: SegmentIndex, data_dir: Path) -> None:
    with SegmentRecorder("gate", data_dir, index, fps=FPS, width=63, height=47) as recorder:
        recorder.write(frame(0, 63, 47), T0)
        with pytest.raises(ValueError, match="47×63×3"):
            recorder.write(frame(0, 64, 48), T0 + 1)
    with pytest.raises(StorageError, match="closed"):
        recorder.write(frame(0, 63, 47), T0 + 2)
    assert _consistent(index, data_dir)[0].frames == 1
    with pytest.raises(ConfigError, match="camera"):
        SegmentRecorder("../evil", data_dir, index, fps=FPS, width=64, height=48)
    with pytest.raises(ConfigError, match="encoder"):
        SegmentRecorder("gate", data_dir, index, fps=FPS, width=64, height=48, codec="no-such-codec")
    with pytest.raises(ConfigError, match="data folder"):
        SegmentRecorder("gate", data_dir / "elsewhere", index, fps=FPS, width=64, height=48)


def _boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """Top-level MP4 boxes: (type, offset, size)."""
    data, boxes, offset = path.read_bytes(), [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def test_heal_finishes_a_torn_segment_up_to_its_last_whole_fragment(
    db: Database, index: SegmentIndex, data_dir: Path
) -> None:
    # A segment as a killed process leaves it: the row still says 'writing', the last fragment is torn.
    (done,) = _record(index, data_dir, [T0 + n / FPS for n in range(75)], segment_seconds=60.0)
    path = index.absolute(done.path)
    _, _, keys = _read_back(path)
    whole = max(n for n, key in enumerate(keys) if key)  # each keyframe starts a fragment: these survive
    last_mdat = [offset + size for kind, offset, size in _boxes(path) if kind == b"mdat"][-1]
    with path.open("r+b") as file:
        file.truncate(last_mdat - 10)
    db.write(lambda s: s.execute(update(SegmentRow).values(status="writing", end_at=None, bytes=0, frames=0)))
    never_created = index.add_writing("gate", segment_path("gate", T0 + 100), T0 + 100)
    report = index.heal()
    assert report.finished == (done.id,) and report.dropped == (never_created,)
    (healed,) = _consistent(index, data_dir)
    assert healed.frames == whole >= 50
    assert healed.end_at == pytest.approx(T0 + whole / FPS)
    assert [kind for kind, _, _ in _boxes(path)][-2:] == [b"moof", b"mdat"]
    assert not index.heal().changed


def test_heal_indexes_stray_recordings_and_removes_junk(index: SegmentIndex, data_dir: Path, tmp_path: Path) -> None:
    # A recording whose row is lost (say, the database was restored from an older backup).
    other = tmp_path / "other"
    with Database.open(other / "veilwatch.db") as other_db:
        elsewhere = SegmentIndex(other_db, other)
        (segment,) = _record(elsewhere, other, [T0 + n / FPS for n in range(10)], segment_seconds=60.0)
    stray = data_dir / segment.path
    stray.parent.mkdir(parents=True)
    os.replace(other / segment.path, stray)
    junk = [data_dir / "recordings/gate/2023-11-14/22-00-00.000000.mp4", data_dir / "recordings/gate/notes.txt"]
    for path in junk:
        path.write_bytes(b"not a video")
    (data_dir / "recordings/empty/2023-11-14").mkdir(parents=True)
    report = index.heal()
    assert len(report.indexed) == 1 and sorted(report.removed_files) == sorted(
        p.relative_to(data_dir).as_posix() for p in junk
    )
    (adopted,) = _consistent(index, data_dir)
    assert adopted.start_at == T0 and adopted.frames == 10 and adopted.end_at == pytest.approx(T0 + 0.4)
    assert not (data_dir / "recordings/empty").exists()


def test_heal_drops_rows_whose_file_is_gone(index: SegmentIndex, data_dir: Path) -> None:
    first, second = _record(index, data_dir, [T0 + n / FPS for n in range(50)], segment_seconds=1.0)
    index.absolute(first.path).unlink()  # as a crash between deleting the file and the row leaves it
    assert index.heal().dropped == (first.id,)
    assert _consistent(index, data_dir) == [second]


def test_delete_removes_file_then_row_and_spares_segments_being_written(index: SegmentIndex, data_dir: Path) -> None:
    (segment,) = _record(index, data_dir, [T0, T0 + 0.04], segment_seconds=10.0)
    writing = index.add_writing("gate", segment_path("gate", T0 + 50), T0 + 50)
    with pytest.raises(StorageError, match="being written"):
        index.delete(writing)
    assert index.delete(segment.id) == segment.bytes > 0
    assert index.get(segment.id) is None and not index.absolute(segment.path).exists()
    assert index.delete(segment.id) == 0


def test_rows_cannot_point_outside_the_data_folder(index: SegmentIndex) -> None:
    for rel in ("../outside.mp4", "/etc/passwd", "recordings/../../x.mp4", ""):
        with pytest.raises(StorageError, match="outside the data folder"):
            index.add_writing("gate", rel, T0)
