"""Run tasks in worker processes, so that one bad file cannot take the whole run down.

FFmpeg can crash (not raise) on some damaged files. Each worker process loads the model once and
takes tasks one at a time over a pipe; if it dies mid-task, that task fails with a clear line, a
fresh worker takes its place, and the other files carry on. Workers share the CPU cores: each
gets `cores / workers` inference threads unless told otherwise. Workers speak the protocol of
`pipeline/protocol.py`, as Ray's actors do.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from veilwatch.errors import VeilwatchError, WorkerCrashedError
from veilwatch.pipeline.protocol import (
    Event,
    Failed,
    Finished,
    JobDone,
    JobFailed,
    JobKey,
    JobMismatch,
    JobProgress,
    Progress,
    WholeJob,
    WorkerFatal,
    WorkerMessage,
    WorkerReady,
)
from veilwatch.pipeline.runner import JobRunner
from veilwatch.pipeline.tasks import Task
from veilwatch.settings import AnonymizeSettings

__all__ = ["Event", "Failed", "Finished", "Progress", "run_tasks", "worker_settings"]

PROGRESS_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 10.0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds run_task, so its temporary output is deleted


def _worker_main(conn: Connection, settings_json: str) -> None:
    """Body of a worker process: load the model once, then serve tasks until told to stop."""
    # Ctrl-C reaches every process of the terminal's group; the parent decides and sends SIGTERM.
    # SIGINT was blocked from this process's birth (see _Worker), so none slipped in before this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with contextlib.suppress(SystemExit, BrokenPipeError, EOFError):
        _serve(conn, settings_json)


def _serve(conn: Connection, settings_json: str) -> None:
    runner = JobRunner(AnonymizeSettings.model_validate_json(settings_json))
    conn.send(runner.status)
    if isinstance(runner.status, WorkerFatal):
        return
    while True:
        message = conn.recv()
        if message is None:
            return
        key, job = message
        last = 0.0

        def progress(done: int, total: int, key: JobKey = key) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S:
                last = now
                conn.send(JobProgress(key, done, total))

        conn.send(runner.run(key, job, progress))


class _Worker:
    def __init__(self, context: Any, settings_json: str) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, settings_json), daemon=True)
        # The child inherits this mask: a Ctrl-C during its start-up (interpreter, imports) stays
        # pending instead of killing it with a KeyboardInterrupt traceback; here it is delivered
        # as soon as the mask is restored.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self.task: int | None = None
        self.source = ""
        self.ready = False

    def stop(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self.process.terminate()  # SIGTERM: the worker cleans up and exits
        else:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(None)
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)


def worker_settings(settings: AnonymizeSettings, workers: int) -> AnonymizeSettings:
    """Settings for one of `workers` processes: inference threads split across them."""
    if settings.detector.threads or workers <= 1:
        return settings
    threads = max(1, (os.cpu_count() or 1) // workers)
    return settings.model_copy(update={"detector": settings.detector.model_copy(update={"threads": threads})})


def run_tasks(tasks: list[Task], settings: AnonymizeSettings, workers: int, on_event: Callable[[Event], None]) -> None:
    """Run every task in up to `workers` processes, reporting each event as it happens."""
    context = multiprocessing.get_context("spawn")
    settings_json = worker_settings(settings, workers).model_dump_json()
    pending = deque(range(len(tasks)))
    pool = [_Worker(context, settings_json) for _ in range(max(1, min(workers, len(tasks))))]
    interrupted = False
    try:
        while pending or any(w.task is not None for w in pool):
            _dispatch(pool, pending, tasks)
            ready = wait([w.conn for w in pool] + [w.process.sentinel for w in pool])
            for worker in list(pool):
                if worker.conn in ready or worker.process.sentinel in ready:
                    _collect(worker, pool, pending, on_event, context, settings_json)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for worker in pool:
            worker.stop(interrupted=interrupted)


def _dispatch(pool: list[_Worker], pending: deque[int], tasks: list[Task]) -> None:
    for worker in pool:
        if worker.ready and worker.task is None and pending:
            worker.task = pending.popleft()
            worker.source = tasks[worker.task].source
            worker.conn.send(((worker.task, 0, "whole", 0), WholeJob(tasks[worker.task])))


def _collect(
    worker: _Worker,
    pool: list[_Worker],
    pending: deque[int],
    on_event: Callable[[Event], None],
    context: Any,
    settings_json: str,
) -> None:
    try:
        while worker.conn.poll():
            _handle(worker, worker.conn.recv(), pending, on_event)
    except (EOFError, OSError):
        pass
    if worker.process.is_alive() or (worker.process.exitcode == 0 and worker.task is None):
        return
    if worker.task is not None:
        crash = WorkerCrashedError(_death(worker.process.exitcode), path=worker.source)
        on_event(Failed(worker.task, crash.one_line(), crash.exit_code))
    pool.remove(worker)
    if pending:
        pool.append(_Worker(context, settings_json))


def _handle(worker: _Worker, message: WorkerMessage, pending: deque[int], on_event: Callable[[Event], None]) -> None:
    if isinstance(message, WorkerReady):
        worker.ready = True
    elif isinstance(message, JobProgress):
        on_event(Progress(message.key[0], message.done, message.total))
    elif isinstance(message, JobDone):
        worker.task = None
        on_event(Finished(message.key[0], message.payload if isinstance(message.payload, dict) else {}))
    elif isinstance(message, JobFailed | JobMismatch):
        worker.task = None
        failure = message if isinstance(message, JobFailed) else JobFailed(message.key, message.reason, 1)
        on_event(Failed(failure.key[0], failure.message, failure.exit_code))
    else:
        # The engine itself cannot start (e.g. a bad model): every task fails the same way.
        while pending:
            on_event(Failed(pending.popleft(), message.message, message.exit_code))
        raise _FatalWorkerError(message.message, message.exit_code)


class _FatalWorkerError(VeilwatchError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the decoder crashed ({name}); the file is probably damaged"
    return f"the worker process exited unexpectedly (status {exitcode})"
