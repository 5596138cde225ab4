"""The `veilwatch` command. Heavy modules (ONNX Runtime, PyAV, OpenCV) load only inside commands,
so `veilwatch --help` stays instant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from veilwatch import __version__
from veilwatch.access import Role
from veilwatch.errors import VeilwatchError
from veilwatch.settings import (
    AnonymizeSettings,
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


VeilChoice = Literal["blur", "mosaic", "solid"]
ShapeChoice = Literal["box", "ellipse"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
PrecisionChoice = Literal["int8", "fp32"]
EngineChoice = Literal["local", "ray"]
FLAG_NAMES = {"method": "--veil", "jpeg_quality": "--quality"}  # settings named otherwise on the command line


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
    veil: Annotated[VeilChoice | None, typer.Option(help="How faces are hidden.")] = None,
    shape: Annotated[ShapeChoice | None, typer.Option(help="Veil the whole box or the inscribed ellipse.")] = None,
    box_scale: Annotated[float | None, typer.Option(help="Veil this many times each detected box (≥ 1).")] = None,
    box_drop: Annotated[
        float | None,
        typer.Option(help="Extend veils down by this share of the face height (chin and mouth identify too)."),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Detector score above which a face is veiled.")] = None,
    min_face: Annotated[float | None, typer.Option(help="Smallest face height (px) the search is sized for.")] = None,
    max_face: Annotated[float | None, typer.Option(help="Ignore detections taller than this (px).")] = None,
    max_upscale: Annotated[float | None, typer.Option(help="Largest enlargement used to find small faces.")] = None,
    full_scan_seconds: Annotated[
        float | None,
        typer.Option(help="Video: search every region at every scale at least this often (0: every frame)."),
    ] = None,
    hold_seconds: Annotated[
        float | None, typer.Option(help="Video: keep veiling a face this long after a miss.")
    ] = None,
    lookback_seconds: Annotated[
        float | None, typer.Option(help="Video: also veil a face this long before it was first detected.")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="A CenterFace-compatible ONNX file to use instead.")] = None,
    device: Annotated[DeviceChoice | None, typer.Option(help="Where inference runs.")] = None,
    precision: Annotated[
        PrecisionChoice | None, typer.Option(help="CPU inference with the 8-bit model (made once, cached) or in float.")
    ] = None,
    keep_audio: Annotated[
        bool | None, typer.Option(help="Keep the audio track (dropped by default: voices identify).")
    ] = None,
    keep_metadata: Annotated[
        bool | None, typer.Option(help="Keep EXIF/XMP/container tags (stripped by default).")
    ] = None,
    codec: Annotated[str | None, typer.Option(help="Video encoder (any PyAV/FFmpeg encoder).")] = None,
    crf: Annotated[int | None, typer.Option(help="Video quality, 0–51, lower is better.")] = None,
    preset: Annotated[str | None, typer.Option(help="Encoder speed preset (x264/x265).")] = None,
    quality: Annotated[int | None, typer.Option(help="JPEG/WebP quality, 1–100.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Files (or, with --engine ray, parts of videos) processed at once; each worker loads the model "
            "once. Default 1, or with --address one per GPU share or per 2 CPUs of the cluster."
        ),
    ] = None,
    engine: Annotated[
        EngineChoice,
        typer.Option(help="local: worker processes here; ray: Ray actors (pip install 'veilwatch\\[ray]')."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="--engine ray: join this Ray cluster (e.g. HOST:6379, auto) instead of starting one."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Inference threads per worker (0: share the cores).")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write per-frame boxes, scores and track ids to this JSON file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="TOML settings ([detector], [tracker], [veil], [video], …); flags given override it."),
    ] = None,
) -> None:
    """Veil every face in photos and videos, and strip their metadata."""

    from veilwatch.cli.anonymize import run

    flags: dict[str, Any] = {
        "detector": {
            "model": model,
            "threshold": threshold,
            "min_face": min_face,
            "max_face": max_face,
            "max_upscale": max_upscale,
            "full_scan_seconds": full_scan_seconds,
            "threads": threads,
            "device": device,
            "precision": precision,
        },
        "tracker": {"hold_seconds": hold_seconds, "lookback_seconds": lookback_seconds},
        "veil": {"method": veil, "shape": shape, "box_scale": box_scale, "box_drop": box_drop},
        "video": {"codec": codec, "crf": crf, "preset": preset, "keep_audio": keep_audio},
        "keep_metadata": keep_metadata,
        "jpeg_quality": quality,
        "report": report is not None,
    }
    settings = _anonymize_settings(flags, config)
    if workers is not None and workers < 1:
        _fail("--workers must be at least 1", 2)
    if address is not None and engine != "ray":
        _fail("--address needs --engine ray", 2)
    code = _guarded(
        lambda: run(
            inputs,
            output,
            settings,
            overwrite=overwrite,
            in_place=in_place,
            workers=workers,
            engine=engine,
            address=address,
            report=report,
            quiet=quiet,
        )
    )
    raise typer.Exit(code)


def _anonymize_settings(flags: dict[str, Any], config: Path | None) -> AnonymizeSettings:
    """The settings file's, if any, with the flags given laid over them."""
    from pydantic import ValidationError

    from veilwatch.config import load_anonymize_config

    given = _given(flags)
    try:
        settings = AnonymizeSettings.model_validate(given)  # a bad flag is named as a flag
    except ValidationError as exc:
        _fail(_flag_line(exc), 2)
    if config is None:
        return settings
    try:
        return load_anonymize_config(config, given)
    except VeilwatchError as exc:
        _fail(exc.one_line(), exc.exit_code)


def _flag_line(exc: ValidationError) -> str:
    """A bad flag's error line, naming it as typed (`--box-scale`, not veil.box_scale)."""
    first = exc.errors()[0]
    field = str(first["loc"][-1]) if first["loc"] else ""
    flag = FLAG_NAMES.get(field, "--" + field.replace("_", "-"))
    return f"invalid option {flag}: {first['msg']}" if field else f"invalid options: {first['msg']}"


def _given(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags that were given (not None), sub-table by sub-table."""
    given: dict[str, Any] = {}
    for key, flag in flags.items():
        value = _given(flag) if isinstance(flag, dict) else flag
        if value is not None and value != {}:
            given[key] = value
    return given


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file of server and cameras.")] = None,
    demo: Annotated[bool, typer.Option(help="Two synthetic cameras of walking faces; works offline.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1: this machine only).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8470).")] = None,
) -> None:
    """Run the monitoring room: live veiled cameras that visitors can watch and steer."""
    from veilwatch.cli.serve import resolve_config, run_server

    raise typer.Exit(_guarded(lambda: run_server(resolve_config(config, demo, host, port), demo=demo)))


users_app = typer.Typer(help="Manage who may enter the monitoring room.", no_args_is_help=True)
app.add_typer(users_app, name="users")

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default: from --config, else veilwatch-data).")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="The server's TOML config.")]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="visitor, operator, auditor or admin.")] = Role.VISITOR,
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
    role: Annotated[Role, typer.Argument(help="The new role.")],
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


vault_app = typer.Typer(
    help="The K-of-N key vault: set up key holders, approve unmask requests offline.", no_args_is_help=True
)
app.add_typer(vault_app, name="vault")


@vault_app.command("init")
def vault_init(
    holder: Annotated[list[str], typer.Option("--holder", help="A key holder's name (repeat, once per holder).")],
    k: Annotated[int, typer.Option("--k", help="How many holders must approve an unmask (2..N).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for vault.json and one NAME.share per holder.")],
    days: Annotated[int, typer.Option(help="Days of keys to make; run init again before they run out.")] = 366,
    first_day: Annotated[
        str | None, typer.Option(help="First day (UTC, YYYY-MM-DD) with a key; default today.")
    ] = None,
    passphrase_file: Annotated[
        list[str] | None,
        typer.Option("--passphrase-file", help="NAME=FILE: read NAME's passphrase from FILE instead of asking."),
    ] = None,
) -> None:
    """Make a vault: a public vault.json and one passphrase-protected share file per holder."""
    from veilwatch.cli.vault import init

    raise typer.Exit(_guarded(lambda: init(holder, k, days, first_day, out, passphrase_file or [])))


@vault_app.command("approve")
def vault_approve(
    share: Annotated[Path, typer.Option("--share", help="Your share file (NAME.share).")],
    request: Annotated[Path, typer.Option("--request", help="The unmask request (JSON) from the server.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write your signed approval (JSON).")],
    passphrase_stdin: Annotated[bool, typer.Option(help="Read the passphrase from standard input.")] = False,
) -> None:
    """Approve an unmask request with your share (offline); hand the approval file to the server."""
    from veilwatch.cli.vault import approve_request

    raise typer.Exit(_guarded(lambda: approve_request(share, request, passphrase_stdin, out)))


@vault_app.command("revoke")
def vault_revoke(
    holder: Annotated[str, typer.Argument(help="The key holder's name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Refuse a key holder's approvals from now on (logged); then make a new vault with `vault init`."""
    from veilwatch.cli.vault import revoke

    raise typer.Exit(_guarded(lambda: revoke(holder, config, data_dir)))


@vault_app.command("show")
def vault_show(
    file: Annotated[Path, typer.Argument(help="A vault.json, share, unmask request or approval file.")],
) -> None:
    """Show what a vault, share, request or approval file holds (never a secret)."""
    from veilwatch.cli.vault import show

    raise typer.Exit(_guarded(lambda: show(file)))


unmask_app = typer.Typer(
    help="Ask a running server to unmask a time range, hand in key holders' approvals, fetch the clip.",
    no_args_is_help=True,
)
app.add_typer(unmask_app, name="unmask")
ServerOption = Annotated[str, typer.Option("--server", help="The server's URL, e.g. http://127.0.0.1:8470.")]
UserOption = Annotated[str, typer.Option("--user", help="Your staff login name.")]
PasswordStdin = Annotated[bool, typer.Option(help="Read your password from standard input.")]


@unmask_app.command("ask")
def unmask_ask(
    server: ServerOption,
    user: UserOption,
    camera: Annotated[str, typer.Option(help="The camera to unmask.")],
    start: Annotated[str, typer.Option(help="Start (ISO 8601 or Unix seconds).")],
    end: Annotated[str, typer.Option(help="End (ISO 8601 or Unix seconds).")],
    reason: Annotated[str, typer.Option(help="Why: shown publicly on the transparency page.")],
    out: Annotated[Path, typer.Option("--out", help="Where to save the request file for the key holders.")],
    region: Annotated[
        str | None, typer.Option(help="Reveal only faces touching x0,y0,x1,y1 (pixels); default: every face.")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Ask for an unmask (logged, public) and save the request file the key holders approve."""
    from veilwatch.cli.unmask import ask

    raise typer.Exit(_guarded(lambda: ask(server, user, password_stdin, camera, start, end, reason, out, region)))


@unmask_app.command("hand-in")
def unmask_hand_in(
    server: ServerOption,
    user: UserOption,
    request: Annotated[str, typer.Option("--request", help="The request id.")],
    approval: Annotated[list[Path], typer.Argument(help="Approval files made with `veilwatch vault approve`.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Hand approval files in; with K of them, the server unmasks."""
    from veilwatch.cli.unmask import hand_in

    raise typer.Exit(_guarded(lambda: hand_in(server, user, password_stdin, request, approval)))


@unmask_app.command("fetch")
def unmask_fetch(
    server: ServerOption,
    user: UserOption,
    request: Annotated[str, typer.Option("--request", help="The request id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to save the unmasked clip (MP4).")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Save the unmasked clip of your request (it lives on the server only for a limited time)."""
    from veilwatch.cli.unmask import fetch

    raise typer.Exit(_guarded(lambda: fetch(server, user, password_stdin, request, out)))


audit_app = typer.Typer(help="Check and export the tamper-evident log of every action.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
witness_app = typer.Typer(
    help="Witness a log: cosign its checkpoints only while it provably only grows.", no_args_is_help=True
)
app.add_typer(witness_app, name="witness")
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the server.")]


@audit_app.command("verify")
def audit_verify(
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (name+id+key), from a source you trust.")],
    server: Annotated[str | None, typer.Option("--server", help="A running server's URL to read the log from.")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="A file from `veilwatch audit export`.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="A checkpoint you saved earlier: the log must extend it.")
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="After success, save the latest checkpoint here for next time.")
    ] = None,
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="A witness's verifier key whose cosignature to check.")
    ] = None,
    timeout: TimeoutOption = 10.0,
    tiles: Annotated[
        str | None, typer.Option("--tiles", help="The log as C2SP tlog-tiles: a URL (…/log/) or a mirrored folder.")
    ] = None,
) -> None:
    """Check the log offline against its key and a saved checkpoint; report the first bad entry."""
    from veilwatch.cli.audit import verify

    raise typer.Exit(_guarded(lambda: verify(server, export, key, checkpoint, save, witness or [], timeout, tiles)))


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The JSON file to write.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export the log (entries, stored hashes, signed checkpoints) for offline verification."""
    from veilwatch.cli.audit import export as run_export

    raise typer.Exit(_guarded(lambda: run_export(config, data_dir, output)))


@audit_app.command("verify-export")
def audit_verify_export(
    clip: Annotated[Path, typer.Argument(help="The exported clip (MP4).")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (shown on the transparency page).")],
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="Its manifest (default: CLIP with .manifest.json).")
    ] = None,
) -> None:
    """Check offline that a clip is exactly what was exported, and that the export is in the signed log."""
    from veilwatch.cli.exports import verify_export_file

    raise typer.Exit(_guarded(lambda: verify_export_file(clip, manifest, key)))


@witness_app.command("init")
def witness_init(
    state: Annotated[Path, typer.Option("--state", help="Folder for the witness's key and state.")],
    name: Annotated[
        str | None, typer.Option(help="The witness's name (no spaces); default HOST/veilwatch-witness.")
    ] = None,
) -> None:
    """Make a witness key and print its verifier key (for the log's [audit] witnesses)."""
    from veilwatch.cli.audit import witness_init as run_init

    raise typer.Exit(_guarded(lambda: run_init(state, name)))


@witness_app.command("cosign")
def witness_cosign(
    server: Annotated[str, typer.Option("--server", help="The log server's URL.")],
    log_key: Annotated[str, typer.Option("--log-key", help="The log's verifier key, from a source you trust.")],
    state: Annotated[Path, typer.Option("--state", help="The witness's folder (`veilwatch witness init`).")],
    timeout: TimeoutOption = 10.0,
) -> None:
    """Cosign the log's checkpoint if it extends the last one cosigned; refuse a rollback or split view."""
    from veilwatch.cli.audit import witness_cosign as run_cosign

    raise typer.Exit(_guarded(lambda: run_cosign(server, log_key, state, timeout)))


@witness_app.command("serve")
def witness_serve(
    state: Annotated[Path, typer.Option("--state", help="The witness's folder (`veilwatch witness init`).")],
    log_key: Annotated[
        list[str], typer.Option("--log-key", help="A log's verifier key this witness cosigns for (repeatable).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7381,
) -> None:
    """Serve C2SP tlog-witness (POST /add-checkpoint): cosign only checkpoints that extend the last one."""
    from veilwatch.cli.audit import witness_serve as run_serve

    raise typer.Exit(_guarded(lambda: run_serve(state, log_key, host, port)))


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


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"veilwatch: error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Console entry point."""
    app(prog_name="veilwatch")


if __name__ == "__main__":
    main()
