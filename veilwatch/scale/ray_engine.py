"""`--engine ray`: the same tasks as the local engine, run by Ray actors, with the same events.

The driver (this process) plans jobs: an image or a short video is one job; a long video is cut
into parts at keyframes (`split.py`), whose files are joined once all are done. Each actor loads
the model once and takes jobs over Ray (GPU actors when the cluster has GPUs). Ray restarts an
actor that dies and retries the job it was running (`max_restarts`, `max_task_retries`); a job
whose retries are spent fails its file only. Every job writes into a hidden scratch folder
beside its output, and only the driver renames finished files into place, so a killed worker
never leaves anything under a final name, and the scratch folders go when the run ends.

Workers read inputs and write outputs by path: on a cluster, every node must see the same paths
(shared storage) and run the same Python and veilwatch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veilwatch.errors import ConfigError, OutputError, VeilwatchError, WorkerCrashedError
from veilwatch.media.atomic import PART_PREFIX
from veilwatch.pipeline.engine import video_timing
from veilwatch.pipeline.protocol import (
    Event,
    Failed,
    Finished,
    Job,
    JobDone,
    JobFailed,
    JobKey,
    JobMismatch,
    JoinJob,
    Outcome,
    PartJob,
    PartResult,
    Progress,
    WholeJob,
)
from veilwatch.pipeline.runner import PartFrameHook
from veilwatch.pipeline.tasks import Task
from veilwatch.scale.merge import merge_summary
from veilwatch.scale.split import (
    JOINABLE_SUFFIXES,
    Part,
    SplitPolicy,
    VideoIndex,
    plan_parts,
    read_index,
    target_part_frames,
)
from veilwatch.scale.worker import VeilWorker
from veilwatch.settings import AnonymizeSettings

INSTALL_HINT = "--engine ray needs Ray: pip install 'veilwatch[ray]'"
POLL_S = 0.25  # how often progress is gathered while jobs run
JOBS_PER_ACTOR = 2  # jobs queued on an actor at once, so it never waits for the driver
CLUSTER_CPUS_PER_ACTOR = 2  # on a CPU cluster without --workers: one actor per this many CPUs
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # jobs pass paths and small results, never pixels
CONNECT_TIMEOUT_S = 10.0  # to reach a cluster's address before Ray is asked to join it


@dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray engine runs."""

    address: str | None = None  # an existing cluster ("auto", "HOST:PORT", "ray://…"); None: start one here
    split: SplitPolicy = field(default_factory=SplitPolicy)
    actors_per_gpu: int = 4  # actors sharing one GPU (each decodes and encodes on its own CPU core)
    retries: int = 2  # restarts of a dead actor, and retries of the job it was running
    on_part_frame: PartFrameHook | None = None  # called in the worker after each written frame of a part


def load_ray() -> Any:
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


def run_tasks(
    tasks: list[Task],
    settings: AnonymizeSettings,
    workers: int | None,
    on_event: Callable[[Event], None],
    options: RayOptions | None = None,
) -> None:
    """Run every task on Ray (joining `options.address`, or a Ray started here), reporting events."""
    options = options or RayOptions()
    ray = load_ray()
    started = _connect(ray, options.address, workers)
    try:
        _Run(ray, tasks, settings, workers, on_event, options).run()
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, address: str | None, workers: int | None) -> bool:
    """Start or join Ray unless this process already is connected; True if we must shut it down."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
    try:
        if address:
            _check_reachable(address)  # Ray itself would retry an unreachable address for ever
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise VeilwatchError(f"cannot start or join {where}: {' '.join(str(exc).split())[:200]}") from exc
    return True


def _check_reachable(address: str) -> None:
    """A one-line error unless something listens at HOST:PORT (other address forms are Ray's to judge)."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise VeilwatchError(f"cannot join the Ray cluster at {address}: {reason}") from exc


@dataclass
class _File:
    """One task's progress through the run."""

    task: Task
    scratch: Path
    frames: int = 0  # expected frames (0: unknown)
    parts: list[Part] = field(default_factory=list)
    first_pts: tuple[int, ...] = ()  # timestamp of each part's first written frame
    results: dict[int, PartResult] = field(default_factory=dict)
    attempt: int = 0  # bumped when the file falls back to running whole; older jobs are ignored
    finished: bool = False
    started: float | None = None  # when its first job was sent (its latency counts from there)
    done: dict[JobKey, int] = field(default_factory=dict)


class _Run:
    """The driver's loop: plan, keep every actor fed, gather outcomes and progress, finalize."""

    def __init__(
        self,
        ray: Any,
        tasks: list[Task],
        settings: AnonymizeSettings,
        workers: int | None,
        on_event: Callable[[Event], None],
        options: RayOptions,
    ) -> None:
        self._ray = ray
        self._settings = settings
        self._workers = workers
        self._on_event = on_event
        self._options = options
        run_id = uuid.uuid4().hex[:12]
        self._files = [_File(t, Path(t.output).parent / f"{PART_PREFIX}{run_id}.scratch") for t in tasks]
        self._pending: deque[tuple[JobKey, Job]] = deque()
        self._inflight: dict[Any, tuple[Any, JobKey]] = {}
        self._actors: list[Any] = []
        self._hub: Any = None
        self._last_done: dict[int, int] = {}
        self._jobs: dict[JobKey, Job] = {}  # jobs sent, to send again after an actor's death
        self._deaths: dict[JobKey, int] = {}
        self._cwd = os.getcwd()

    def run(self) -> None:
        """Run everything; actors and scratch folders are gone afterwards, whatever happens."""
        try:
            self._hub = self._ray.remote(num_cpus=0)(_ProgressHub).remote()
            self._actors = [self._new_actor() for _ in range(self._actor_count())]
            self._plan()
            self._loop()
        finally:
            for actor in self._actors:
                with contextlib.suppress(Exception):
                    self._ray.kill(actor)
            for scratch in {f.scratch for f in self._files}:
                shutil.rmtree(scratch, ignore_errors=True)

    # --- actors -------------------------------------------------------------------------------

    def _gpus(self) -> float:
        if self._settings.detector.device == "cpu":
            return 0.0
        return float(self._ray.cluster_resources().get("GPU", 0))

    def _actor_count(self) -> int:
        if self._workers:
            return self._workers
        gpus = self._gpus()
        if gpus >= 1:
            return int(gpus) * self._options.actors_per_gpu
        if self._options.address is None:
            return 1
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)) // CLUSTER_CPUS_PER_ACTOR)

    def _new_actor(self) -> Any:
        count = self._actor_count()
        detector = self._settings.detector
        resources: dict[str, float]
        gpus = self._gpus()
        if gpus >= 1:
            share = math.floor(min(1.0, int(gpus) / count) * 10_000) / 10_000  # Ray counts GPU shares to 1e-4
            resources = {"num_gpus": share, "num_cpus": 1}
            detector = detector.model_copy(update={"device": "cuda", "threads": detector.threads or 1})
        elif self._options.address is None:
            # A Ray started here has one logical CPU per worker; inference threads share the cores.
            resources = {"num_cpus": 1}
            threads = detector.threads or max(1, (os.cpu_count() or 1) // count)
            detector = detector.model_copy(update={"threads": threads})
        else:
            cpus = int(self._ray.cluster_resources().get("CPU", 1))
            per_actor = max(1, cpus // count) if self._workers else CLUSTER_CPUS_PER_ACTOR
            resources = {"num_cpus": per_actor}
            detector = detector.model_copy(update={"threads": detector.threads or per_actor})
        settings = self._settings.model_copy(update={"detector": detector})
        retries = self._options.retries
        cls = self._ray.remote(max_restarts=retries, max_task_retries=retries, **resources)(VeilWorker)
        return cls.remote(settings.model_dump_json(), self._options.on_part_frame)

    # --- planning -----------------------------------------------------------------------------

    def _plan(self) -> None:
        indexes = {i: self._index(f) for i, f in enumerate(self._files) if f.task.kind == "video"}
        seconds = sum(len(ix.pts) / float(ix.rate or 25) for ix in indexes.values() if ix is not None)
        actors = len(self._actors)
        sizes = {i: index.frames for i, index in indexes.items() if index is not None}
        for i in sorted(range(len(self._files)), key=lambda i: -sizes.get(i, 0)):  # longest first
            index = indexes.get(i)
            file = self._files[i]
            if not file.task.overwrite and Path(file.task.output).exists():
                exists = OutputError("output exists (use --overwrite to replace it)", path=file.task.output)
                self._fail(i, exists.one_line(), exists.exit_code)  # before any work, as locally
                continue
            if index is not None:
                file.frames = index.frames
                timing = video_timing(self._settings, index.rate)
                target = target_part_frames(seconds, actors, index.rate, self._options.split)
                file.parts = plan_parts(index, timing, target, self._options.split)
            if len(file.parts) > 1 and index is not None and actors > 1:  # one actor gains nothing from parts
                self._queue_parts(i, index)
            else:
                file.parts = []
                self._queue_whole(i)

    def _index(self, file: _File) -> VideoIndex | None:
        if Path(file.task.output).suffix.lower() not in JOINABLE_SUFFIXES:
            return None
        return read_index(Path(file.task.source))

    def _part_file(self, i: int, number: int) -> Path:
        return self._made(i, f"part{number:05d}").with_suffix(".mp4")

    def _queue_whole(self, i: int) -> None:
        file = self._files[i]
        job = WholeJob(Task(file.task.source, str(self._made(i, "whole")), file.task.kind, overwrite=True))
        self._pending.append(((i, file.attempt, "whole", 0), job))

    def _queue_parts(self, i: int, index: VideoIndex) -> None:
        file = self._files[i]
        suffix = Path(file.task.output).suffix
        file.first_pts = tuple(index.pts[part.start] for part in file.parts)
        for part in file.parts:
            job = PartJob(
                file.task.source,
                part,
                index.pts[part.warm_start : part.stop],
                index.pts[part.seek_frame] if part.seek_frame > 0 else None,
                str(self._part_file(i, part.number)),
                suffix,
            )
            self._pending.append(((i, file.attempt, "part", part.number), job))

    # --- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        last_poll = 0.0
        while self._pending or self._inflight:
            self._dispatch()
            ready, _ = self._ray.wait(list(self._inflight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                actor, key = self._inflight.pop(ref)
                self._collect(ref, actor, key)
            if time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                self._report_progress()

    def _dispatch(self) -> None:
        load = {id(a): 0 for a in self._actors}
        for actor, _ in self._inflight.values():
            load[id(actor)] = load.get(id(actor), 0) + 1
        for actor in sorted(self._actors, key=lambda a: load[id(a)]):
            while self._pending and load[id(actor)] < JOBS_PER_ACTOR:
                key, job = self._pending.popleft()
                if self._stale(key):
                    continue
                self._jobs[key] = job
                file = self._files[key[0]]
                file.started = file.started or time.perf_counter()
                self._inflight[actor.run.remote(key, job, self._hub, self._cwd)] = (actor, key)
                load[id(actor)] += 1

    def _stale(self, key: JobKey) -> bool:
        file = self._files[key[0]]
        return file.finished or key[1] != file.attempt

    def _collect(self, ref: Any, actor: Any, key: JobKey) -> None:
        try:
            outcome: Outcome = self._ray.get(ref)
        except self._ray.exceptions.RayActorError:
            # The actor died more often than it may be restarted (a decoder crashing on a damaged
            # file does, every time). A fresh actor takes its place; the job waiting behind the
            # culprit on that actor died with it, so every job gets one more try before its file fails.
            self._replace(actor)
            self._deaths[key] = self._deaths.get(key, 0) + 1
            if self._deaths[key] < 2 and not self._stale(key):
                self._pending.appendleft((key, self._jobs[key]))
                return
            crash = WorkerCrashedError("a worker died on this file repeatedly; the file is probably damaged")
            crash.path = self._files[key[0]].task.source
            outcome = JobFailed(key, crash.one_line(), crash.exit_code)
        except self._ray.exceptions.RayError as exc:
            outcome = JobFailed(key, f"{self._files[key[0]].task.source}: worker error: {_first_line(exc)}", 1)
        if self._stale(key):
            return
        if isinstance(outcome, JobFailed):
            self._fail(key[0], outcome.message, outcome.exit_code)
        elif isinstance(outcome, JobMismatch):
            self._fall_back(key[0])
        else:
            self._succeed(key, outcome)

    def _replace(self, actor: Any) -> None:
        if actor in self._actors:
            self._actors.remove(actor)
            self._actors.append(self._new_actor())

    def _succeed(self, key: JobKey, outcome: JobDone) -> None:
        i, _, kind, number = key
        file = self._files[i]
        if kind == "whole":
            summary = dict(outcome.payload) if isinstance(outcome.payload, dict) else {}
            summary.update(source=file.task.source, output=file.task.output)
            self._finish(i, self._made(i, "whole"), summary)
        elif kind == "part" and isinstance(outcome.payload, PartResult):
            file.results[number] = outcome.payload
            if len(file.results) == len(file.parts):
                self._queue_join(i)
        elif kind == "join":
            results = [(p, file.results[p.number]) for p in file.parts]
            seconds = time.perf_counter() - (file.started or time.perf_counter())
            summary = merge_summary(file.task.source, file.task.output, results, seconds)
            self._finish(i, self._made(i, "joined"), summary)

    def _made(self, i: int, what: str) -> Path:
        """Where a job writes file `i`'s finished output in the scratch folder."""
        file = self._files[i]
        file.scratch.mkdir(parents=True, exist_ok=True)
        return file.scratch / f"{i}-{what}{Path(file.task.output).suffix}"

    def _queue_join(self, i: int) -> None:
        file = self._files[i]
        parts = tuple(str(self._part_file(i, p.number)) for p in file.parts)
        job = JoinJob(file.task.source, parts, file.first_pts, str(self._made(i, "joined")))
        self._pending.appendleft(((i, file.attempt, "join", 0), job))  # finish files before starting more

    def _finish(self, i: int, made: Path, summary: dict[str, Any]) -> None:
        file = self._files[i]
        try:
            _move_into_place(made, Path(file.task.output), overwrite=file.task.overwrite)
        except VeilwatchError as exc:
            self._fail(i, exc.one_line(), exc.exit_code)
            return
        file.finished = True
        self._on_event(Finished(i, summary))

    def _fail(self, i: int, message: str, exit_code: int) -> None:
        file = self._files[i]
        if not file.finished:
            file.finished = True
            self._on_event(Failed(i, message, exit_code))

    def _fall_back(self, i: int) -> None:
        """The decoder disagreed with the split plan: veil the file whole, as the local engine does."""
        file = self._files[i]
        file.attempt += 1
        file.parts, file.results = [], {}
        self._queue_whole(i)

    def _report_progress(self) -> None:
        snapshot: dict[JobKey, tuple[int, int]] = self._ray.get(self._hub.snapshot.remote())
        done: dict[int, int] = {}
        expected: dict[int, int] = {}
        for key, (count, total) in snapshot.items():
            if not self._stale(key) and key[2] != "join":
                done[key[0]] = done.get(key[0], 0) + count
                expected[key[0]] = expected.get(key[0], 0) + total
        for i, count in done.items():
            if self._last_done.get(i) != count:
                self._last_done[i] = count
                self._on_event(Progress(i, count, self._files[i].frames or expected[i]))


class _ProgressHub:
    """A tiny actor that workers tell how far they are; the driver reads it a few times a second."""

    def __init__(self) -> None:
        self._done: dict[JobKey, tuple[int, int]] = {}

    def update(self, key: JobKey, done: int, total: int) -> None:
        """Record frames done (of total) for a job."""
        self._done[key] = (done, total)

    def snapshot(self) -> dict[JobKey, tuple[int, int]]:
        """Frames done per job so far."""
        return dict(self._done)


def _move_into_place(made: Path, target: Path, *, overwrite: bool) -> None:
    """Rename a finished file from the scratch folder to its final name, in one step."""
    if target.exists() and not overwrite:
        raise OutputError("output exists (use --overwrite to replace it)", path=str(target))
    mask = os.umask(0o022)
    os.umask(mask)
    try:
        os.chmod(made, 0o666 & ~mask)  # scratch files are private; outputs get normal modes
        os.replace(made, target)
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror or exc}", path=str(target)) from exc


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else type(exc).__name__
