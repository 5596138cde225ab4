"""The `veilwatch` command. Heavy modules (ONNX Runtime, PyAV, OpenCV) load only inside commands,
so `veilwatch --help` stays instant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from pydantic import BaseModel

from veilwatch import __version__
from veilwatch.errors import VeilwatchError
from veilwatch.settings import (
    AnonymizeSettings,
    DetectorSettings,
    TrackerSettings,
    VeilSettings,
    VideoOutputSettings,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

app = typer.Typer(
    name="veilwatch",
    help="Camera surveillance built the other way round: faces veiled at the edge, watchers watched.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"veilwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """veilwatch: veil every face, watch the watchers."""


def _default(model: type[BaseModel], field: str) -> Any:
    """A setting's default, so the command line and the settings model never disagree."""
    return model.model_fields[field].default


VeilChoice = Literal["blur", "mosaic", "solid"]
ShapeChoice = Literal["box", "ellipse"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
PrecisionChoice = Literal["int8", "fp32"]


@app.command()
def anonymize(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Images, videos or folders (recursively); '-' reads an image from stdin."),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output file (one input), folder (several), or '-' for stdout."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that already exist.")] = False,
    in_place: Annotated[bool, typer.Option(help="Replace the inputs themselves with their veiled versions.")] = False,
    veil: Annotated[VeilChoice, typer.Option(help="How faces are hidden.")] = _default(VeilSettings, "method"),
    shape: Annotated[ShapeChoice, typer.Option(help="Veil the whole box or the inscribed ellipse.")] = _default(
        VeilSettings, "shape"
    ),
    box_scale: Annotated[float, typer.Option(help="Veil this many times each detected box (≥ 1).")] = _default(
        VeilSettings, "box_scale"
    ),
    box_drop: Annotated[
        float,
        typer.Option(help="Move veils down by this share of the face height (chin and mouth identify too)."),
    ] = _default(VeilSettings, "box_drop"),
    threshold: Annotated[float, typer.Option(help="Detector score above which a face is veiled.")] = _default(
        DetectorSettings, "threshold"
    ),
    min_face: Annotated[float, typer.Option(help="Smallest face height (px) the search is sized for.")] = _default(
        DetectorSettings, "min_face"
    ),
    max_face: Annotated[float | None, typer.Option(help="Ignore detections taller than this (px).")] = _default(
        DetectorSettings, "max_face"
    ),
    max_upscale: Annotated[float, typer.Option(help="Largest enlargement used to find small faces.")] = _default(
        DetectorSettings, "max_upscale"
    ),
    full_scan_seconds: Annotated[
        float,
        typer.Option(help="Video: search every region at every scale at least this often (0: every frame)."),
    ] = _default(DetectorSettings, "full_scan_seconds"),
    hold_seconds: Annotated[float, typer.Option(help="Video: keep veiling a face this long after a miss.")] = _default(
        TrackerSettings, "hold_seconds"
    ),
    lookback_seconds: Annotated[
        float, typer.Option(help="Video: also veil a face this long before it was first detected.")
    ] = _default(TrackerSettings, "lookback_seconds"),
    model: Annotated[Path | None, typer.Option(help="A CenterFace-compatible ONNX file to use instead.")] = _default(
        DetectorSettings, "model"
    ),
    device: Annotated[DeviceChoice, typer.Option(help="Where inference runs.")] = _default(DetectorSettings, "device"),
    precision: Annotated[
        PrecisionChoice, typer.Option(help="CPU inference with the 8-bit model (made once, cached) or in float.")
    ] = _default(DetectorSettings, "precision"),
    keep_audio: Annotated[
        bool, typer.Option(help="Keep the audio track (dropped by default: voices identify).")
    ] = _default(VideoOutputSettings, "keep_audio"),
    keep_metadata: Annotated[bool, typer.Option(help="Keep EXIF/XMP/container tags (stripped by default).")] = _default(
        AnonymizeSettings, "keep_metadata"
    ),
    codec: Annotated[str, typer.Option(help="Video encoder (any PyAV/FFmpeg encoder).")] = _default(
        VideoOutputSettings, "codec"
    ),
    crf: Annotated[int, typer.Option(help="Video quality, 0–51, lower is better.")] = _default(
        VideoOutputSettings, "crf"
    ),
    preset: Annotated[str, typer.Option(help="Encoder speed preset (x264/x265).")] = _default(
        VideoOutputSettings, "preset"
    ),
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality, 1–100.")] = _default(
        AnonymizeSettings, "jpeg_quality"
    ),
    workers: Annotated[int, typer.Option(help="Files processed at once (each worker loads the model once).")] = 1,
    threads: Annotated[int, typer.Option(help="Inference threads per worker (0: share the cores).")] = _default(
        DetectorSettings, "threads"
    ),
    report: Annotated[
        Path | None, typer.Option(help="Write per-frame boxes, scores and track ids to this JSON file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Veil every face in photos and videos, and strip their metadata."""
    from pydantic import ValidationError

    from veilwatch.cli.anonymize import run

    try:
        settings = AnonymizeSettings(
            detector=DetectorSettings(
                model=model,
                threshold=threshold,
                min_face=min_face,
                max_face=max_face,
                max_upscale=max_upscale,
                full_scan_seconds=full_scan_seconds,
                threads=threads,
                device=device,
                precision=precision,
            ),
            tracker=TrackerSettings(hold_seconds=hold_seconds, lookback_seconds=lookback_seconds),
            veil=VeilSettings(method=veil, shape=shape, box_scale=box_scale, box_drop=box_drop),
            video=VideoOutputSettings(codec=codec, crf=crf, preset=preset, keep_audio=keep_audio),
            keep_metadata=keep_metadata,
            jpeg_quality=quality,
            report=report is not None,
        )
    except ValidationError as exc:
        _fail(_validation_line(exc), 2)
    if workers < 1:
        _fail("--workers must be at least 1", 2)
    code = _guarded(
        lambda: run(
            inputs,
            output,
            settings,
            overwrite=overwrite,
            in_place=in_place,
            workers=workers,
            report=report,
            quiet=quiet,
        )
    )
    raise typer.Exit(code)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file of server and cameras.")] = None,
    demo: Annotated[bool, typer.Option(help="Two synthetic cameras of walking faces; works offline.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1: this machine only).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8470).")] = None,
) -> None:
    """Run the monitoring room: live veiled cameras that visitors can watch and steer."""
    from veilwatch.cli.serve import resolve_config, run_server

    raise typer.Exit(_guarded(lambda: run_server(resolve_config(config, demo, host, port))))


users_app = typer.Typer(help="Manage who may enter the monitoring room.", no_args_is_help=True)
app.add_typer(users_app, name="users")

RoleChoice = Literal["visitor", "operator", "auditor", "admin"]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default: from --config, else veilwatch-data).")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="The server's TOML config.")]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[RoleChoice, typer.Option(help="visitor, operator, auditor or admin.")] = "visitor",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a user (asks for the password twice, or reads it from stdin)."""
    from veilwatch.cli.users import add

    raise typer.Exit(_guarded(lambda: add(name, role, password_stdin, config, data_dir)))


@users_app.command("list")
def users_list(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """List users and their roles."""
    from veilwatch.cli.users import list_users

    raise typer.Exit(_guarded(lambda: list_users(config, data_dir)))


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password (their sessions end at once)."""
    from veilwatch.cli.users import passwd

    raise typer.Exit(_guarded(lambda: passwd(name, password_stdin, config, data_dir)))


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[RoleChoice, typer.Argument(help="The new role.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a user's role (their sessions end at once)."""
    from veilwatch.cli.users import set_role

    raise typer.Exit(_guarded(lambda: set_role(name, role, config, data_dir)))


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="Login name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove a user (their sessions end at once)."""
    from veilwatch.cli.users import remove

    raise typer.Exit(_guarded(lambda: remove(name, config, data_dir)))


@app.command()
def samples(
    folder: Annotated[Path, typer.Argument(help="Folder to write the sample photo and video into.")],
) -> None:
    """Write a sample photo (with GPS tags) and video made from public-domain images."""
    from veilwatch.media.samples import write_samples

    for path in write_samples(folder):
        typer.echo(str(path))


@app.command()
def doctor() -> None:
    """Show versions, ONNX Runtime providers, the model file and the video codecs available."""
    from veilwatch.cli.doctor import run

    raise typer.Exit(_guarded(run))


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except VeilwatchError as exc:
        _fail(exc.one_line(), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; no partial output was left under a final name", 130)


def _validation_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"invalid option {where}: {first['msg']}"


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"veilwatch: error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Console entry point."""
    app(prog_name="veilwatch")


if __name__ == "__main__":
    main()
