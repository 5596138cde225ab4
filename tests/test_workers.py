"""Worker processes: one dead worker fails one file, the run goes on; a bad model fails them all."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from tests.helpers import ClipSpec, astronaut, encode_image, moving_face_frames, write_clip
from veilwatch.errors import VeilwatchError
from veilwatch.pipeline.tasks import Task
from veilwatch.pipeline.workers import Event, Failed, Finished, Progress, run_tasks, worker_settings
from veilwatch.settings import AnonymizeSettings, DetectorSettings


def _image(path: Path) -> Path:
    path.write_bytes(encode_image(astronaut()[::2, ::2], "JPEG"))
    return path


def test_a_killed_worker_fails_only_its_own_task(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "long.mp4", [p for p, _ in moving_face_frames(120, 320, 180, 40)], ClipSpec())
    images = [_image(tmp_path / f"p{i}.jpg") for i in range(2)]
    out = tmp_path / "out"
    tasks = [Task(str(video), str(out / "long.mp4"), "video")]
    tasks += [Task(str(p), str(out / p.name), "image") for p in images]
    events: list[Event] = []
    killed: list[int] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, Progress) and event.task_index == 0 and not killed:
            # The worker is mid-video: kill it the way a decoder segfault would end it.
            workers = [p for p in multiprocessing.active_children() if p.is_alive()]
            assert len(workers) == 1
            assert workers[0].pid is not None
            killed.append(workers[0].pid)
            os.kill(workers[0].pid, signal.SIGKILL)

    run_tasks(tasks, AnonymizeSettings(), 1, on_event)
    assert killed
    failed = [e for e in events if isinstance(e, Failed)]
    finished = [e for e in events if isinstance(e, Finished)]
    assert [e.task_index for e in failed] == [0]
    assert "crashed" in failed[0].message
    assert "SIGKILL" in failed[0].message
    assert failed[0].message.startswith(str(video))
    assert failed[0].exit_code == 5
    assert sorted(e.task_index for e in finished) == [1, 2]
    assert all(e.summary["faces_detected"] == 1 for e in finished)
    assert not (out / "long.mp4").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["p0.jpg", "p1.jpg"]
    assert not any(p.is_alive() for p in multiprocessing.active_children())


def test_errors_in_one_file_do_not_stop_the_others(tmp_path: Path) -> None:
    good = _image(tmp_path / "good.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    gone = tmp_path / "gone.jpg"
    clip = write_clip(tmp_path / "clip.mp4", [p for p, _ in moving_face_frames(10)], ClipSpec())
    tasks = [
        Task(str(broken), str(tmp_path / "o1.jpg"), "image"),
        Task(str(good), str(tmp_path / "o2.jpg"), "image"),
        Task(str(gone), str(tmp_path / "o3.jpg"), "image"),
        Task(str(clip), str(tmp_path / "o4.mp4"), "video"),
    ]
    events: list[Event] = []
    run_tasks(tasks, AnonymizeSettings(), 2, events.append)
    failed = {e.task_index: e for e in events if isinstance(e, Failed)}
    finished = {e.task_index: e for e in events if isinstance(e, Finished)}
    assert sorted(failed) == [0, 2]
    assert sorted(finished) == [1, 3]
    assert failed[0].message.startswith(f"{broken}: ")
    assert failed[0].exit_code == 2
    assert failed[2].message == f"{gone}: no such file"
    assert finished[3].summary["frames"] == 10
    assert (tmp_path / "o2.jpg").exists() and (tmp_path / "o4.mp4").exists()
    assert not (tmp_path / "o1.jpg").exists()


def test_a_model_that_cannot_load_fails_every_task(tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"garbage" * 20)
    tasks = [Task(str(_image(tmp_path / f"p{i}.jpg")), str(tmp_path / f"o{i}.jpg"), "image") for i in range(3)]
    events: list[Event] = []
    settings = AnonymizeSettings(detector=DetectorSettings(model=fake))
    with pytest.raises(VeilwatchError) as caught:
        run_tasks(tasks, settings, 1, events.append)
    assert caught.value.exit_code == 4
    assert "cannot read ONNX model" in str(caught.value)
    assert sorted(e.task_index for e in events if isinstance(e, Failed) and e.exit_code == 4) == [0, 1, 2]
    assert not any(tmp_path.glob("o*.jpg"))


def test_worker_settings_share_the_cores() -> None:
    base = AnonymizeSettings()
    assert worker_settings(base, 1) == base
    split = worker_settings(base, 2)
    assert split.detector.threads == max(1, (os.cpu_count() or 1) // 2)
    fixed = AnonymizeSettings(detector=DetectorSettings(threads=3))
    assert worker_settings(fixed, 4).detector.threads == 3
