"""From what the user typed to a list of tasks: files, folders (recursively, mirrored), or `-`.

Output names: `-o` names the output file for one input, or a folder for several; without it an
image or video is written beside itself as `NAME_veiled.EXT`, and a folder `DIR` into a mirrored
tree `DIR_veiled/`. An output that would land on an input is refused unless `--in-place`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from veilwatch.errors import InputError, InputNotFoundError, OutputError, VeilwatchError
from veilwatch.media.images import image_output_suffix
from veilwatch.media.kinds import kind_by_suffix, sniff_kind, video_output_suffix
from veilwatch.pipeline.tasks import STDIO, MediaKind, Task

SUFFIX = "_veiled"


@dataclass
class Plan:
    """Tasks to run, inputs that failed before running, and files skipped as not media."""

    tasks: list[Task] = field(default_factory=list)
    failures: list[VeilwatchError] = field(default_factory=list)
    skipped: int = 0


def _output_name(source: Path, kind: MediaKind) -> str:
    suffix = image_output_suffix(source.name) if kind == "image" else video_output_suffix(source)
    return source.stem + suffix


def plan(inputs: list[str], output: str | None, *, overwrite: bool = False, in_place: bool = False) -> Plan:
    """Tasks for every input; folders expand to their media files, recursively."""
    result = Plan()
    several = len(inputs) > 1 or any(Path(i).is_dir() for i in inputs if i != STDIO)
    if output == STDIO and several:
        result.failures.append(OutputError("-o - (standard output) takes a single input file"))
        return result
    out_dir = Path(output) if output and output != STDIO and (several or Path(output).is_dir()) else None
    mirror_into = out_dir if len(inputs) == 1 else None
    for entry in inputs:
        try:
            _plan_entry(entry, output, out_dir, mirror_into, result, overwrite=overwrite, in_place=in_place)
        except VeilwatchError as exc:
            result.failures.append(exc)
    _name_apart(result)
    _refuse_collisions(result)
    return result


def _output_key(task: Task) -> str:
    return task.output if task.output == STDIO else os.path.abspath(task.output)


def _name_apart(result: Plan) -> None:
    """Converted files whose output names collide keep their own extension: a.bmp → a.bmp.png."""
    counts = Counter(_output_key(task) for task in result.tasks)
    result.tasks = [_apart(task) if counts[_output_key(task)] > 1 else task for task in result.tasks]


def _apart(task: Task) -> Task:
    source, target = Path(task.source), Path(task.output)
    if task.output == STDIO or not source.suffix or source.suffix.lower() == target.suffix.lower():
        return task
    return replace(task, output=str(target.with_name(target.stem + source.suffix + target.suffix)))


def _refuse_collisions(result: Plan) -> None:
    """Two inputs that would write the same output (e.g. a.png and a.bmp): the later one fails."""
    claimed: dict[str, str] = {}
    kept = []
    for task in result.tasks:
        key = _output_key(task)
        if key in claimed and task.output != STDIO:
            result.failures.append(
                OutputError(f"its output {task.output} is also the output of {claimed[key]}", path=task.source)
            )
            continue
        claimed[key] = task.source
        kept.append(task)
    result.tasks = kept


def _plan_entry(
    entry: str,
    output: str | None,
    out_dir: Path | None,
    mirror_into: Path | None,
    result: Plan,
    *,
    overwrite: bool,
    in_place: bool,
) -> None:
    if entry == STDIO:
        result.tasks.append(Task(STDIO, output if output and out_dir is None else STDIO, "image", overwrite))
        return
    source = Path(entry)
    if source.is_dir():
        if in_place:
            root = source
        elif mirror_into is not None:
            root = mirror_into
        else:
            root = out_dir / source.name if out_dir else source.with_name(source.name + SUFFIX)
        for file, kind in _media_files(source, result):
            target = file if in_place else root / file.relative_to(source).parent / _output_name(file, kind)
            result.tasks.append(_task(file, target, kind, overwrite, in_place))
        return
    if not source.exists():
        raise InputNotFoundError("no such file or folder", path=entry)
    kind = kind_by_suffix(source) or sniff_kind(source)
    if output == STDIO:
        if kind == "video":
            raise OutputError("a video cannot be written to standard output; name an output file", path=entry)
        result.tasks.append(Task(entry, STDIO, kind, overwrite))
        return
    if in_place:
        target = source
    elif out_dir is not None:
        target = out_dir / _output_name(source, kind)
    elif output and output != STDIO:
        target = Path(output)
    else:
        target = source.with_name(source.stem + SUFFIX + Path(_output_name(source, kind)).suffix)
    result.tasks.append(_task(source, target, kind, overwrite, in_place))


def _task(source: Path, target: Path, kind: MediaKind, overwrite: bool, in_place: bool) -> Task:
    same = target.exists() and os.path.samefile(source, target)
    if same and not in_place:
        raise OutputError("the output would overwrite the input (pass --in-place to allow that)", path=str(source))
    return Task(str(source), str(target), kind, overwrite or in_place)


def _media_files(folder: Path, result: Plan) -> list[tuple[Path, MediaKind]]:
    """Media files below a folder, sorted, skipping hidden files (our temporaries) and our outputs."""
    found: list[tuple[Path, MediaKind]] = []

    def unreadable(exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        result.failures.append(
            InputError(f"cannot read this folder ({reason}); its files were not veiled", path=exc.filename)
        )

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith(SUFFIX) and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            kind = kind_by_suffix(path)
            if kind is None or name.startswith(".") or path.stem.endswith(SUFFIX):
                result.skipped += 1
                continue
            found.append((path, kind))
    return found
