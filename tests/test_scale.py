"""`--engine ray`: split videos, actors, retries and the CLI, on one small local Ray shared by the tests.

The reference for every result is the local engine on the same file with the same settings: the
Ray engine must give the same frames at the same timestamps and the same per-frame boxes and
track ids in the `--report` records.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import ClipSpec, astronaut, background, encode_image, paste_face, read_clip, run_cli, write_clip
from tests.hooks import CrashOnce
from veilwatch.errors import VeilwatchError
from veilwatch.pipeline.engine import Engine, video_timing
from veilwatch.pipeline.jobs import run_task
from veilwatch.pipeline.tasks import Task
from veilwatch.pipeline.workers import Event, Failed, Finished, Progress
from veilwatch.scale.split import SplitPolicy, VideoIndex, plan_parts, read_index
from veilwatch.settings import AnonymizeSettings, DetectorSettings, TrackerSettings

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'veilwatch[ray]')")

from veilwatch.scale.ray_engine import RayOptions, run_tasks  # noqa: E402  (needs Ray)

# Short scan period, hold-over and look-back (5 frames at 25 fps), so that clips of a few seconds
# already split into several parts with a warm-up that starts at a schedule restart.
SETTINGS = AnonymizeSettings(
    report=True,
    detector=DetectorSettings(full_scan_seconds=0.2),
    tracker=TrackerSettings(hold_seconds=0.2, lookback_seconds=0.2),
)
POLICY = SplitPolicy(max_part_seconds=1.6, min_part_warmups=1.0)
OPTIONS = RayOptions(split=POLICY)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[str]:
    """One local Ray (2 CPUs) for every test of this module; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_engine() -> Engine:
    """The local engine with the test settings, for reference results."""
    return Engine(SETTINGS)


def _two_faces_clip(path: Path, frames: int = 160, *, audio: bool = False, rotation: int | None = None) -> Path:
    """320×180, 25 fps, a keyframe every 10 frames: one face walking right all along, a second
    one entering at frame 50 and leaving at 130 (so tracks start and end inside parts)."""
    bg = background(320, 180, seed=3)
    pictures = []
    for i in range(frames):
        frame = bg.copy()
        paste_face(frame, 10 + i, 40, 40)
        if 50 <= i < 130:
            paste_face(frame, 250 - (i - 50), 90, 28)
        pictures.append(frame)
    return write_clip(path, pictures, ClipSpec(gop=10, audio=audio, rotation=rotation))


def _local(engine: Engine, source: Path, output: Path) -> dict[str, Any]:
    return run_task(Task(str(source), str(output), "video"), engine, lambda done, total: None).summary()


def _on_ray(tasks: list[Task], options: RayOptions = OPTIONS, workers: int = 2) -> list[Event]:
    events: list[Event] = []
    run_tasks(tasks, SETTINGS, workers, events.append, options)
    return events


def _assert_same_records(local: dict[str, Any], scaled: dict[str, Any]) -> None:
    """Same frame count and audit numbers, and per frame the same boxes (within a pixel) and ids."""
    for key in ("frames", "faces_detected", "tracks", "longest_tracked_gap"):
        assert scaled[key] == local[key], key
    mine, theirs = local["frame_records"], scaled["frame_records"]
    assert [r["index"] for r in theirs] == [r["index"] for r in mine]
    assert [r["time"] for r in theirs] == [r["time"] for r in mine]
    for a, b in zip(mine, theirs, strict=True):
        for kind in ("faces", "held"):
            assert len(a[kind]) == len(b[kind]), (a["index"], kind)
            for x, y in zip(a[kind], b[kind], strict=True):
                assert np.abs(np.subtract(x["box"], y["box"])).max() <= 1.0, (a["index"], kind)
                assert x["track"] == y["track"], (a["index"], kind)


def _finished(events: list[Event]) -> dict[int, dict[str, Any]]:
    return {e.task_index: e.summary for e in events if isinstance(e, Finished)}


def test_parts_are_cut_at_keyframes_and_warm_up_from_a_schedule_restart() -> None:
    pts = tuple(range(0, 600 * 512, 512))
    index = VideoIndex(pts, tuple(range(0, 600, 12)), Fraction(1, 12800), Fraction(25))
    timing = video_timing(SETTINGS, index.rate)
    parts = plan_parts(index, timing, 50, POLICY)
    assert len(parts) > 3
    assert parts[0].start == 0 and parts[-1].end == 600 and parts[-1].stop == 600
    for before, part in itertools.pairwise(parts):
        assert part.start == before.end and part.start in index.keyframes
        assert before.stop == before.end + timing.lookback
        assert part.warm_start % (timing.restart_every or 1) == 0
        assert part.start - part.warm_start >= POLICY.warmup_memories * timing.memory
        assert part.seek_frame in index.keyframes and part.seek_frame <= part.warm_start
    # Too few keyframes (or too short a video) for two parts: the file stays whole.
    assert len(plan_parts(VideoIndex(pts, (0,), index.time_base, index.rate), timing, 50, POLICY)) == 1


def test_a_split_video_equals_the_local_engine(ray_session: str, local_engine: Engine, tmp_path: Path) -> None:
    clip = _two_faces_clip(tmp_path / "walk.mp4", audio=True, rotation=90)
    index = read_index(clip)
    assert index is not None and index.frames == 160 and len(index.keyframes) == 16
    local = _local(local_engine, clip, tmp_path / "local.mp4")
    events = _on_ray([Task(str(clip), str(tmp_path / "ray.mp4"), "video")])
    scaled = _finished(events)[0]
    assert scaled["output"] == str(tmp_path / "ray.mp4")
    _assert_same_records(local, scaled)
    assert local["tracks"] >= 2
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[-1].total == 160
    ours, theirs = read_clip(tmp_path / "ray.mp4"), read_clip(tmp_path / "local.mp4")
    assert ours.pts == theirs.pts and len(ours.frames) == 160
    assert ours.time_base == theirs.time_base and ours.rate == theirs.rate
    assert ours.rotations == theirs.rotations
    assert ours.audio_streams == theirs.audio_streams == 0  # audio is dropped by default
    # Veils carry random dither, so pixels differ a little; the picture is the same.
    mean_diff = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(ours.frames, theirs.frames, strict=True)])
    assert mean_diff < 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.mp4", "ray.mp4", "walk.mp4"]


def test_audio_is_copied_intact_when_asked(ray_session: str, tmp_path: Path) -> None:
    clip = _two_faces_clip(tmp_path / "talk.mp4", audio=True)
    settings = SETTINGS.model_copy(update={"video": SETTINGS.video.model_copy(update={"keep_audio": True})})
    events: list[Event] = []
    run_tasks([Task(str(clip), str(tmp_path / "out.mp4"), "video")], settings, 2, events.append, OPTIONS)
    assert _finished(events)[0]["frames"] == 160
    ours, original = read_clip(tmp_path / "out.mp4"), read_clip(clip)
    assert ours.audio_streams == 1
    assert ours.audio_duration_s == original.audio_duration_s
    assert ours.pts == original.pts


def test_a_worker_killed_mid_part_is_retried_and_the_file_completes(
    ray_session: str, local_engine: Engine, tmp_path: Path
) -> None:
    clip = _two_faces_clip(tmp_path / "walk.mp4")
    marker = tmp_path / "crashed"
    out = tmp_path / "out"
    options = RayOptions(split=POLICY, on_part_frame=CrashOnce(str(marker), part=1, after_frames=3))
    events = _on_ray([Task(str(clip), str(out / "walk.mp4"), "video")], options)
    assert marker.exists()  # a worker really died in the middle of part 1
    assert not [e for e in events if isinstance(e, Failed)]
    _assert_same_records(_local(local_engine, clip, tmp_path / "local.mp4"), _finished(events)[0])
    assert [p.name for p in out.iterdir()] == ["walk.mp4"]  # no part, scratch or temporary file left
    assert len(read_clip(out / "walk.mp4").frames) == 160


def test_a_corrupt_file_fails_alone_with_the_local_engines_line(
    ray_session: str, local_engine: Engine, tmp_path: Path
) -> None:
    good = _two_faces_clip(tmp_path / "good.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good.read_bytes()[:4000])
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode_image(astronaut()[::2, ::2], "JPEG"))
    out = tmp_path / "out"
    tasks = [
        Task(str(broken), str(out / "broken.mp4"), "video"),
        Task(str(good), str(out / "good.mp4"), "video"),
        Task(str(photo), str(out / "photo.jpg"), "image"),
    ]
    events = _on_ray(tasks)
    failed = [e for e in events if isinstance(e, Failed)]
    assert [e.task_index for e in failed] == [0]
    with pytest.raises(VeilwatchError) as local_error:
        run_task(tasks[0], local_engine, lambda done, total: None)
    local_error.value.path = local_error.value.path or str(broken)
    assert failed[0].message == local_error.value.one_line()
    assert failed[0].exit_code == local_error.value.exit_code == 2
    finished = _finished(events)
    assert finished[1]["frames"] == 160 and finished[2]["faces_detected"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "photo.jpg"]


def _cli_report(tmp_path: Path, name: str, *args: str) -> tuple[int, list[str], dict[str, Any]]:
    """Run the CLI in `tmp_path` on relative paths (workers must resolve them as the driver does)."""
    report = tmp_path / f"{name}.json"
    result = run_cli(
        "anonymize",
        "in",
        "-o",
        name,
        "--report",
        report,
        "--full-scan-seconds",
        "0.2",
        "--hold-seconds",
        "0.2",
        "--lookback-seconds",
        "0.2",
        *args,
        cwd=tmp_path,
        timeout=240,
    )
    errors = [line for line in result.stderr.decode().splitlines() if "error" in line]
    return result.returncode, errors, json.loads(report.read_text())


def test_the_cli_joins_a_cluster_and_matches_the_local_engine(ray_session: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _two_faces_clip(folder / "walk.mp4", frames=60)
    (folder / "photo.jpg").write_bytes(encode_image(astronaut()[::2, ::2], "JPEG"))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    code, errors, local = _cli_report(tmp_path, "local")
    ray_code, ray_errors, scaled = _cli_report(tmp_path, "ray", "--engine", "ray", "--address", ray_session)
    assert code == ray_code == 2
    assert ray_errors == errors and len(errors) == 1 and errors[0].startswith("error: in/broken.mp4: ")
    assert [f["source"] for f in scaled["files"]] == [f["source"] for f in local["files"]]
    for mine, theirs in zip(local["files"], scaled["files"], strict=True):
        assert theirs["output"].replace("ray/", "local/", 1) == mine["output"]
        if mine["kind"] == "video":
            _assert_same_records(mine, theirs)
        else:
            assert theirs["frame_records"] == mine["frame_records"]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["photo.jpg", "walk.mp4"]


def test_without_ray_the_flag_gives_a_one_line_hint(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode_image(astronaut()[::4, ::4], "JPEG"))
    code = (
        "import sys; sys.modules['ray'] = None; from veilwatch.cli.app import main; "
        f"sys.argv = ['veilwatch', 'anonymize', {str(photo)!r}, '--engine', 'ray']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "veilwatch: error: --engine ray needs Ray: pip install 'veilwatch[ray]'"
    ]
    assert not (tmp_path / "photo_veiled.jpg").exists()


def test_help_does_not_import_ray() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "veilwatch.cli.app", "anonymize", "--help"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and b"--engine" in result.stdout and b"--address" in result.stdout
    imported = {line.rsplit(b"|", 1)[1].strip() for line in result.stderr.splitlines() if b"|" in line}
    assert b"veilwatch.errors" in imported
    assert b"ray" not in {name.split(b".")[0] for name in imported}
    assert b"veilwatch.scale" not in {b".".join(name.split(b".")[:2]) for name in imported}


@pytest.mark.shared_data
def test_a_real_clip_split_on_ray_equals_the_local_engine(ray_session: str, shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / "videos" / "face_recognition-short_hamilton_clip.mp4"
    settings = AnonymizeSettings(
        report=True,
        detector=DetectorSettings(full_scan_seconds=0.5),
        tracker=TrackerSettings(hold_seconds=0.5, lookback_seconds=0.5),
    )
    settings = settings.model_copy(update={"video": settings.video.model_copy(update={"keep_audio": True})})
    local = _local(Engine(settings), clip, tmp_path / "local.mp4")
    policy = SplitPolicy(max_part_seconds=2.0, min_part_warmups=1.0, warmup_memories=1.0)
    events: list[Event] = []
    run_tasks(
        [Task(str(clip), str(tmp_path / "ray.mp4"), "video")], settings, 2, events.append, RayOptions(split=policy)
    )
    index = read_index(clip)
    assert index is not None
    assert len(plan_parts(index, video_timing(settings, index.rate), 60, policy)) >= 3
    _assert_same_records(local, _finished(events)[0])
    ours, theirs = read_clip(tmp_path / "ray.mp4"), read_clip(tmp_path / "local.mp4")
    assert ours.pts == theirs.pts and ours.time_base == theirs.time_base
    assert ours.audio_streams == 1 and ours.audio_duration_s == theirs.audio_duration_s
