"""The one worker protocol: the jobs a driver hands to workers and what workers answer.

Local worker processes (`pipeline/workers.py`) and Ray actors (`scale/`) speak it alike: a driver
sends `(JobKey, Job)`; a worker answers `WorkerReady` or `WorkerFatal` once, then `JobProgress`
while a job runs and one `Outcome` per job. Drivers report `Event`s (by task index) to the caller.
Every type is a small frozen dataclass: picklable across pipes and Ray alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from veilwatch.pipeline.tasks import Task
from veilwatch.scale.split import Part

JobKey = tuple[int, int, str, int]  # task index, attempt of the task's plan, job kind, part number


# --- jobs: driver → worker ---------------------------------------------------------------------


@dataclass(frozen=True)
class WholeJob:
    """Veil one whole file (an image, or a video that is not split)."""

    task: Task


@dataclass(frozen=True)
class PartJob:
    """Veil one part of a video into a part file."""

    source: str
    part: Part
    pts: tuple[int, ...]  # timestamps of the frames [part.warm_start, part.stop)
    seek_pts: int | None  # timestamp of the keyframe where decoding starts (None: the stream's start)
    output: str  # the part file (in the run's scratch folder)
    output_suffix: str  # extension of the final output (it decides the encoder)


@dataclass(frozen=True)
class JoinJob:
    """Remux the part files of one video, in order, into one output file."""

    source: str
    parts: tuple[str, ...]
    first_pts: tuple[int, ...]  # each part's first timestamp, as the index says
    output: str  # in the run's scratch folder; the driver renames it into place


Job = WholeJob | PartJob | JoinJob


def job_source(job: Job) -> str:
    """The input file a job works on (what its error lines name)."""
    return job.task.source if isinstance(job, WholeJob) else job.source


# --- answers: worker → driver ------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReady:
    """The worker loaded the model and takes jobs."""


@dataclass(frozen=True)
class WorkerFatal:
    """The engine cannot start (e.g. a bad model): every job would fail with this line."""

    message: str
    exit_code: int


@dataclass(frozen=True)
class JobProgress:
    """Frames done of a job (of `total`; 0: unknown)."""

    key: JobKey
    done: int
    total: int


@dataclass(frozen=True)
class PartResult:
    """What one part found: the file summary's numbers for its frames, and its report records."""

    number: int
    frames: int
    faces: int
    tracks: int  # tracks first seen in this part's written frames
    longest_tracked_gap: int
    frame_records: list[dict[str, Any]] = field(default_factory=list)
    # local track id → (frame of first sighting, first box as the records round it), for the
    # driver to give a face one id across parts
    track_firsts: dict[int, tuple[int, tuple[float, ...]]] = field(default_factory=dict)


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
WorkerMessage = WorkerReady | WorkerFatal | JobProgress | Outcome


# --- events: driver → caller -------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Progress on a task."""

    task_index: int
    done: int
    total: int


@dataclass(frozen=True)
class Finished:
    """A task that succeeded, with its result summary."""

    task_index: int
    summary: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """A task that failed, with the one-line reason and exit code."""

    task_index: int
    message: str
    exit_code: int


Event = Progress | Finished | Failed
