"""The body of a Ray worker (an actor): loads the model once, then runs jobs one at a time.

Jobs never raise for a file's own trouble: a `VeilwatchError` comes back as `JobFailed` with the
same one line the local engine prints, so the driver can tell it from a worker that died (which
Ray restarts, reloading the model, and retries the job on) or a bug.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from veilwatch.errors import VeilwatchError
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.jobs import run_task
from veilwatch.pipeline.tasks import Task
from veilwatch.scale.parts import JoinJob, Mismatch, PartJob, PartResult, join_parts, veil_part
from veilwatch.settings import AnonymizeSettings

PROGRESS_INTERVAL_S = 0.2

JobKey = tuple[int, int, str, int]  # file, attempt of the file's plan, job kind, part number


@dataclass(frozen=True)
class WholeJob:
    """Veil one whole file (an image, or a video that is not split) into the scratch folder."""

    task: Task


Job = WholeJob | PartJob | JoinJob


@dataclass(frozen=True)
class JobDone:
    """A job that succeeded: a file summary (whole file), a part's result, or None (join)."""

    key: JobKey
    payload: dict[str, Any] | PartResult | None
    seconds: float


@dataclass(frozen=True)
class JobFailed:
    """A job that failed on its file: the one-line reason and exit code."""

    key: JobKey
    message: str
    exit_code: int


@dataclass(frozen=True)
class JobMismatch:
    """A part whose decoded frames disagree with the split plan: the file must run whole."""

    key: JobKey
    reason: str


Outcome = JobDone | JobFailed | JobMismatch


# Called after each written frame of a part with (part number, frames written): an injection
# point for tracing, and for tests that kill a worker mid-part (the package itself never does).
PartFrameHook = Callable[[int, int], None]


class VeilWorker:
    """One Ray actor: an engine loaded once, serving jobs."""

    def __init__(self, settings_json: str, on_part_frame: PartFrameHook | None = None) -> None:
        self._settings = AnonymizeSettings.model_validate_json(settings_json)
        self._on_part_frame = on_part_frame
        self._engine: Engine | None = None
        self._fatal: tuple[str, int] | None = None
        try:
            self._engine = Engine(self._settings)
        except VeilwatchError as exc:
            self._fatal = (exc.one_line(), exc.exit_code)  # every job fails with it, as locally

    def describe(self) -> dict[str, str]:
        """Provider and precision of the loaded model (for benchmarks and `doctor`-like checks)."""
        if self._engine is None:
            return {}
        network = self._engine.network
        return {"provider": network.provider, "precision": network.precision}

    def run(self, key: JobKey, job: Job, hub: Any, cwd: str) -> Outcome:
        """Run one job in the driver's folder `cwd`; file errors come back as `JobFailed`, never raised."""
        if self._fatal is not None or self._engine is None:
            message, code = self._fatal or ("the model could not be loaded", 4)
            return JobFailed(key, message, code)
        if os.path.isdir(cwd):
            # Paths stay as the user typed them (relative ones too), so messages read as locally;
            # shared storage puts the driver's folder at the same path on every node.
            os.chdir(cwd)
        started = time.perf_counter()
        try:
            payload = self._run(key, job, self._engine, hub)
        except VeilwatchError as exc:
            exc.path = exc.path or _source(job)
            return JobFailed(key, exc.one_line(), exc.exit_code)
        except MemoryError:
            return JobFailed(key, f"{_source(job)}: out of memory", 1)
        if isinstance(payload, Mismatch):
            return JobMismatch(key, payload.reason)
        return JobDone(key, payload, time.perf_counter() - started)

    def _run(self, key: JobKey, job: Job, engine: Engine, hub: Any) -> dict[str, Any] | PartResult | Mismatch | None:
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S or done == total:
                last = now
                hub.update.remote(key, done, total)  # fire and forget

        if isinstance(job, WholeJob):
            return run_task(job.task, engine, progress).summary()
        if isinstance(job, PartJob):
            return veil_part(engine, job, progress, lambda written: self._part_frame(job, written))
        join_parts(job, self._settings.video.keep_audio, self._settings.keep_metadata)
        return None

    def _part_frame(self, job: PartJob, written: int) -> None:
        if self._on_part_frame is not None:
            self._on_part_frame(job.part.number, written)


def _source(job: Job) -> str:
    return job.task.source if isinstance(job, WholeJob) else job.source
