"""`veilwatch anonymize`: plan the tasks, run them in workers, show progress, report, exit status."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from veilwatch import __version__
from veilwatch.detection.model_files import resolve_model
from veilwatch.errors import VeilwatchError
from veilwatch.media.atomic import atomic_output
from veilwatch.pipeline.batch import plan
from veilwatch.pipeline.tasks import STDIO, Task
from veilwatch.pipeline.workers import Event, Failed, Finished, run_tasks
from veilwatch.pipeline.workers import Progress as TaskProgress
from veilwatch.settings import AnonymizeSettings


class _Display:
    """Rich progress: one bar for the files, one per file being worked on (frames, fps, ETA)."""

    def __init__(self, tasks: list[Task], console: Console, quiet: bool) -> None:
        self._tasks = tasks
        self._console = console
        self._quiet = quiet
        self.results: dict[int, dict[str, Any]] = {}
        self.failures: dict[int, Failed] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        self._overall = self._progress.add_task("files", total=len(tasks), rate="")
        self._bars: dict[int, TaskID] = {}

    def __enter__(self) -> _Display:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def on_event(self, event: Event) -> None:
        """Update the bars and collect results."""
        if isinstance(event, TaskProgress):
            bar = self._bar(event.task_index)
            task = next(t for t in self._progress.tasks if t.id == bar)
            rate = f"{event.done / task.elapsed:.1f} fps" if task.elapsed else ""
            self._progress.update(bar, completed=event.done, total=event.total or None, rate=rate)
            return
        bar_id = self._bars.pop(event.task_index, None)
        if bar_id is not None:
            self._progress.remove_task(bar_id)
        self._progress.advance(self._overall)
        if isinstance(event, Finished):
            self.results[event.task_index] = event.summary
            self._note_result(event.summary)
        else:
            self.failures[event.task_index] = event
            self._progress.console.print(f"[red]error:[/red] {_escape(event.message)}", highlight=False, soft_wrap=True)

    def _bar(self, index: int) -> TaskID:
        if index not in self._bars:
            name = Path(self._tasks[index].source).name
            self._bars[index] = self._progress.add_task(name[:40], total=None, rate="")
        return self._bars[index]

    def _note_result(self, summary: dict[str, Any]) -> None:
        if self._quiet:
            return
        line = _escape(f"{summary['source']} → {summary['output']}: ")
        if summary["kind"] == "video":
            line += f"{_count(summary['frames'], 'frame')}, {_count(summary['tracks'], 'face track')}"
            run = summary["longest_tracked_gap"]
            if run:
                line += f" [yellow](a face it tracked went unveiled for up to {_count(run, 'frame')})[/yellow]"
        else:
            line += _count(summary["faces_detected"], "face")
        self._progress.console.print(line, highlight=False, soft_wrap=True)


def _count(n: int, noun: str) -> str:
    """`1 face`, `2 faces`: a number with its noun in the right number."""
    return f"{n} {noun}{'s' * (n != 1)}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run(
    inputs: list[str],
    output: str | None,
    settings: AnonymizeSettings,
    *,
    overwrite: bool,
    in_place: bool,
    workers: int | None,
    report: Path | None,
    quiet: bool,
    engine: str = "local",
    address: str | None = None,
) -> int:
    """Veil every input; returns the exit status (0 when every file succeeded)."""
    with _interruptible():
        return _run(inputs, output, settings, overwrite, in_place, workers, report, quiet, engine, address)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM stop the run cleanly (KeyboardInterrupt), whatever this process inherited.

    A process started in the background by a non-interactive shell inherits SIGINT ignored, and
    Python then leaves it ignored: a Ctrl-C (or `kill -INT`) would be lost and the outputs written.
    A plain SIGTERM would end this process at once and orphan its workers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(sig, handler)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(
    inputs: list[str],
    output: str | None,
    settings: AnonymizeSettings,
    overwrite: bool,
    in_place: bool,
    workers: int | None,
    report: Path | None,
    quiet: bool,
    engine: str,
    address: str | None,
) -> int:
    console = Console(stderr=True)
    runner = _runner(engine, address)  # before anything else: a missing Ray is a one-line hint
    resolve_model(settings.detector.model)  # fail fast, before any worker starts
    planned = plan(inputs, output, overwrite=overwrite, in_place=in_place)
    codes: list[int] = []
    for failure in planned.failures:
        _print_failure(console, failure, codes)
    stdio = [t for t in planned.tasks if STDIO in (t.source, t.output)]
    files = [t for t in planned.tasks if t not in stdio]
    summaries: list[dict[str, Any]] = []
    if stdio:
        summaries.extend(_run_in_process(stdio, settings, console, codes))
    if files:
        with _Display(files, console, quiet) as display:
            runner(files, settings, workers, display.on_event)
        summaries.extend(display.results[i] for i in sorted(display.results))
        codes.extend(f.exit_code for f in display.failures.values())
    if report is not None:
        _write_report(report, settings, summaries)
    if not quiet:
        _print_totals(console, summaries, len(codes), planned.skipped)
    if not planned.tasks and not codes:
        console.print("[red]error:[/red] no image or video found in the inputs", soft_wrap=True)
        return 2
    return max(codes, default=0)


Runner = Callable[[list[Task], AnonymizeSettings, "int | None", Callable[[Event], None]], None]


def _runner(engine: str, address: str | None) -> Runner:
    """How file tasks run: worker processes here, or Ray actors (imported only when asked for)."""
    if engine != "ray":
        return lambda tasks, settings, workers, on_event: run_tasks(tasks, settings, workers or 1, on_event)
    from veilwatch.scale.ray_engine import RayOptions, load_ray
    from veilwatch.scale.ray_engine import run_tasks as run_on_ray

    load_ray()
    options = RayOptions(address=address)
    return lambda tasks, settings, workers, on_event: run_on_ray(tasks, settings, workers, on_event, options)


def _run_in_process(
    tasks: list[Task], settings: AnonymizeSettings, console: Console, codes: list[int]
) -> list[dict[str, Any]]:
    """Standard input/output tasks run here (their streams belong to this process)."""
    from veilwatch.errors import InternalError, VeilwatchError
    from veilwatch.pipeline.engine import Engine
    from veilwatch.pipeline.jobs import run_task

    engine = Engine(settings)
    summaries = []
    for task in tasks:
        name = "<stdin>" if task.source == STDIO else task.source
        try:
            summaries.append(run_task(task, engine, lambda done, total: None).summary())
        except VeilwatchError as exc:
            exc.path = exc.path or name
            _print_failure(console, exc, codes)
        except Exception as exc:  # a bug, not the input's fault: one line, like the workers report it
            _print_failure(console, InternalError.wrap(exc, name), codes)
    return summaries


def _print_failure(console: Console, exc: VeilwatchError, codes: list[int]) -> None:
    console.print(f"[red]error:[/red] {_escape(exc.one_line())}", highlight=False, soft_wrap=True)
    codes.append(exc.exit_code)


def _write_report(path: Path, settings: AnonymizeSettings, summaries: list[dict[str, Any]]) -> None:
    document = {
        "veilwatch": __version__,
        "settings": json.loads(settings.model_dump_json()),
        "files": summaries,
    }
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(document, indent=1))


def _print_totals(console: Console, summaries: list[dict[str, Any]], failed: int, skipped: int) -> None:
    images = sum(1 for s in summaries if s["kind"] == "image")
    videos = len(summaries) - images
    parts = [f"veiled {_count(images, 'image')} and {_count(videos, 'video')}"]
    if failed:
        parts.append(f"[red]{failed} failed[/red]")
    if skipped:
        parts.append(f"{_count(skipped, 'non-media file')} skipped")
    console.print(", ".join(parts), highlight=False, soft_wrap=True)
