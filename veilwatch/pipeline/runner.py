"""What any worker (local process or Ray actor) does: load the engine once, then run jobs into outcomes.

A job never raises for its file's own trouble: a `VeilwatchError` comes back as `JobFailed` with
the one line the CLI prints, a bug as an internal error's line, so that a driver can tell them from
a worker that died.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from veilwatch.errors import InternalError, VeilwatchError
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.jobs import run_task
from veilwatch.pipeline.protocol import (
    Job,
    JobDone,
    JobFailed,
    JobKey,
    JobMismatch,
    Outcome,
    PartJob,
    PartResult,
    WholeJob,
    WorkerFatal,
    WorkerReady,
    job_source,
)
from veilwatch.scale.parts import Mismatch, join_parts, veil_part
from veilwatch.settings import AnonymizeSettings

JobProgressFn = Callable[[int, int], None]  # frames done, frames expected (0: unknown)
# Called after each written frame of a part with (part number, frames written): an injection
# point for tracing, and for tests that kill a worker mid-part (the package itself never does).
PartFrameHook = Callable[[int, int], None]


class JobRunner:
    """An engine loaded once (or the one line why it could not be), running jobs one at a time."""

    def __init__(self, settings: AnonymizeSettings, on_part_frame: PartFrameHook | None = None) -> None:
        self.settings = settings
        self._on_part_frame = on_part_frame
        self.engine: Engine | None = None
        try:
            self.engine = Engine(settings)
            self.status: WorkerReady | WorkerFatal = WorkerReady()
        except VeilwatchError as exc:
            self.status = WorkerFatal(exc.one_line(), exc.exit_code)

    def run(self, key: JobKey, job: Job, progress: JobProgressFn) -> Outcome:
        """Run one job; every failure of the file (or of this code) is a `JobFailed`, never raised."""
        if self.engine is None:
            fatal = self.status if isinstance(self.status, WorkerFatal) else WorkerFatal("no model loaded", 4)
            return JobFailed(key, fatal.message, fatal.exit_code)
        started = time.perf_counter()
        try:
            payload = self._run(job, self.engine, progress)
        except VeilwatchError as exc:
            exc.path = exc.path or job_source(job)
            return JobFailed(key, exc.one_line(), exc.exit_code)
        except MemoryError:
            return JobFailed(key, f"{job_source(job)}: out of memory", 1)
        except Exception as exc:  # a bug, not the file's fault: one line, and this worker serves on
            crash = InternalError.wrap(exc, job_source(job))
            return JobFailed(key, crash.one_line(), crash.exit_code)
        if isinstance(payload, str):
            return JobMismatch(key, payload)
        return JobDone(key, payload, time.perf_counter() - started)

    def _run(self, job: Job, engine: Engine, progress: JobProgressFn) -> dict[str, Any] | PartResult | str | None:
        """The job's payload; a string is a part's mismatch with its split plan."""
        if isinstance(job, WholeJob):
            return run_task(job.task, engine, progress).summary()
        if isinstance(job, PartJob):
            result = veil_part(engine, job, progress, lambda written: self._part_frame(job, written))
            return result.reason if isinstance(result, Mismatch) else result
        join_parts(job, self.settings.video.keep_audio, self.settings.keep_metadata)
        return None

    def _part_frame(self, job: PartJob, written: int) -> None:
        if self._on_part_frame is not None:
            self._on_part_frame(job.part.number, written)
