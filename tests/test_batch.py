"""Planning (inputs → tasks and output names), media kinds, atomic outputs, settings and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.helpers import ClipSpec, astronaut, background, encode_image, write_clip
from veilwatch.errors import (
    ConfigError,
    CorruptInputError,
    InputError,
    InputNotFoundError,
    ModelError,
    OutputError,
    UnsupportedInputError,
    VeilingError,
    VeilwatchError,
    WorkerCrashedError,
)
from veilwatch.media.atomic import atomic_output
from veilwatch.media.kinds import kind_by_suffix, sniff_kind, video_output_suffix
from veilwatch.pipeline.batch import plan
from veilwatch.settings import AnonymizeSettings, DetectorSettings, VeilSettings


def _touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(astronaut()[:64, :64], "JPEG"))
    return path


def _tree(root: Path) -> Path:
    """album/ with photos at two depths, a video, a note, a hidden temp file and an old output."""
    album = root / "album"
    _touch_image(album / "a.jpg")
    _touch_image(album / "trip" / "b.JPG")
    _touch_image(album / "trip" / "day 2" / "c.jpeg")
    (album / "trip" / "day 2" / "notes.txt").write_text("not media")
    (album / "trip" / "clip.mov").write_bytes(b"")
    (album / ".veilwatch-x.part.jpg").write_bytes(b"")
    _touch_image(album / "old_veiled.jpg")
    return album


def _outputs(p: Any) -> dict[str, str]:
    return {Path(t.source).name: t.output for t in p.tasks}


def test_folder_is_mirrored_recursively_beside_itself(tmp_path: Path) -> None:
    album = _tree(tmp_path)
    planned = plan([str(album)], None)
    assert planned.failures == []
    out = tmp_path / "album_veiled"
    assert _outputs(planned) == {
        "a.jpg": str(out / "a.jpg"),
        "b.JPG": str(out / "trip" / "b.jpg"),
        "c.jpeg": str(out / "trip" / "day 2" / "c.jpeg"),
        "clip.mov": str(out / "trip" / "clip.mov"),
    }
    kinds = {Path(t.source).name: t.kind for t in planned.tasks}
    assert kinds["clip.mov"] == "video" and kinds["a.jpg"] == "image"
    assert planned.skipped == 3  # the note, the hidden temporary, the earlier output


def test_folder_with_output_is_mirrored_into_it(tmp_path: Path) -> None:
    album = _tree(tmp_path)
    planned = plan([str(album)], str(tmp_path / "clean"))
    assert _outputs(planned)["c.jpeg"] == str(tmp_path / "clean" / "trip" / "day 2" / "c.jpeg")


def test_several_inputs_go_into_the_output_folder(tmp_path: Path) -> None:
    album = _tree(tmp_path)
    single = _touch_image(tmp_path / "solo.png")
    planned = plan([str(album), str(single)], str(tmp_path / "out"))
    outputs = _outputs(planned)
    assert outputs["solo.png"] == str(tmp_path / "out" / "solo.png")
    assert outputs["b.JPG"] == str(tmp_path / "out" / "album" / "trip" / "b.jpg")


def test_single_file_names(tmp_path: Path) -> None:
    photo = _touch_image(tmp_path / "photo.jpg")
    scan = tmp_path / "scan.tif"
    scan.write_bytes(encode_image(astronaut()[:32, :32], "TIFF"))
    assert plan([str(photo)], None).tasks[0].output == str(tmp_path / "photo_veiled.jpg")
    assert plan([str(scan)], None).tasks[0].output == str(tmp_path / "scan_veiled.png")
    assert plan([str(photo)], str(tmp_path / "x.png")).tasks[0].output == str(tmp_path / "x.png")
    (tmp_path / "dir").mkdir()
    assert plan([str(photo)], str(tmp_path / "dir")).tasks[0].output == str(tmp_path / "dir" / "photo.jpg")


def test_missing_input_is_a_planning_failure_and_others_still_plan(tmp_path: Path) -> None:
    photo = _touch_image(tmp_path / "photo.jpg")
    planned = plan([str(tmp_path / "gone.jpg"), str(photo)], str(tmp_path / "out"))
    assert len(planned.tasks) == 1
    assert len(planned.failures) == 1
    failure = planned.failures[0]
    assert isinstance(failure, InputNotFoundError)
    assert isinstance(failure, FileNotFoundError)
    assert failure.one_line() == f"{tmp_path / 'gone.jpg'}: no such file or folder"
    assert failure.exit_code == 2


def test_output_onto_input_needs_in_place(tmp_path: Path) -> None:
    photo = _touch_image(tmp_path / "photo.jpg")
    planned = plan([str(photo)], str(photo), overwrite=True)
    assert planned.tasks == []
    assert isinstance(planned.failures[0], OutputError)
    assert "--in-place" in str(planned.failures[0])
    in_place = plan([str(photo)], None, in_place=True)
    assert in_place.tasks[0].output == str(photo)
    assert in_place.tasks[0].overwrite is True


def test_stdin_plans_an_image_to_stdout(tmp_path: Path) -> None:
    task = plan(["-"], None).tasks[0]
    assert (task.source, task.output, task.kind) == ("-", "-", "image")
    assert plan(["-"], str(tmp_path / "o.png")).tasks[0].output == str(tmp_path / "o.png")


def test_dash_output_for_a_file_means_stdout(tmp_path: Path) -> None:
    photo = _touch_image(tmp_path / "photo.jpg")
    assert plan([str(photo)], "-").tasks[0].output == "-"


def test_two_inputs_never_share_an_output(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode_image(astronaut()[:32, :32], "PNG"))
    (folder / "a.bmp").write_bytes(encode_image(astronaut()[:32, :32], "BMP"))
    planned = plan([str(folder)], None, overwrite=True)
    assert not planned.failures
    assert sorted(Path(t.output).name for t in planned.tasks) == ["a.bmp.png", "a.png"]


# --- kinds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.JPG", "image"), ("a.heic", "image"), ("a.tiff", "image"), ("a.MP4", "video"), ("a.mkv", "video"),
     ("a.gif", "video"), ("a.txt", None), ("noext", None)],
)  # fmt: skip
def test_kind_by_suffix(name: str, kind: str | None) -> None:
    assert kind_by_suffix(Path(name)) == kind


def test_sniffing_looks_inside_files_without_a_known_suffix(tmp_path: Path) -> None:
    photo = tmp_path / "photo"
    photo.write_bytes(encode_image(astronaut()[:32, :32], "PNG"))
    clip = write_clip(tmp_path / "clip.mp4", [background(64, 48, seed=i) for i in range(3)], ClipSpec())
    renamed = clip.rename(tmp_path / "clip.bin")
    text = tmp_path / "notes.dat"
    text.write_text("hello")
    assert sniff_kind(photo) == "image"
    assert sniff_kind(renamed) == "video"
    with pytest.raises(UnsupportedInputError, match="neither an image nor a video"):
        sniff_kind(text)
    planned = plan([str(renamed)], None)
    assert planned.tasks[0].kind == "video"
    assert planned.tasks[0].output == str(tmp_path / "clip_veiled.mp4")


@pytest.mark.parametrize(
    ("name", "suffix"), [("a.mov", ".mov"), ("a.MKV", ".mkv"), ("a.gif", ".mp4"), ("a.wmv", ".mp4")]
)
def test_video_output_suffix(name: str, suffix: str) -> None:
    assert video_output_suffix(Path(name)) == suffix


# --- atomic outputs ------------------------------------------------------------------------------


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.jpg"
    with atomic_output(target, overwrite=False) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".veilwatch-") and ".part" in tmp.name
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jpg"]


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.jpg"
    with pytest.raises(KeyboardInterrupt), atomic_output(target, overwrite=False) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_refuses_to_replace_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.jpg"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="--overwrite"), atomic_output(target, overwrite=False):
        pass
    assert target.read_bytes() == b"old"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_output_in_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with (
        pytest.raises(OutputError, match="cannot write here"),
        atomic_output(blocker / "out.jpg", overwrite=False),
    ):
        pass


# --- settings and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: DetectorSettings(threshold=0),
        lambda: DetectorSettings(threshold=1.5),
        lambda: DetectorSettings(unknown=1),  # type: ignore[call-arg]
        lambda: VeilSettings(box_scale=0.5),
        lambda: VeilSettings(method="pixelate"),
        lambda: AnonymizeSettings(detector=DetectorSettings(min_face=20, max_face=10)),
        lambda: AnonymizeSettings(jpeg_quality=0),
    ],
)
def test_invalid_settings_are_rejected(build: Any) -> None:
    with pytest.raises(ValidationError):
        build()


def test_settings_are_frozen_and_roundtrip_as_json() -> None:
    settings = AnonymizeSettings(veil=VeilSettings(method="mosaic"))
    with pytest.raises(ValidationError):
        settings.jpeg_quality = 10  # type: ignore[misc]
    again = AnonymizeSettings.model_validate_json(settings.model_dump_json())
    assert again == settings
    assert settings.keep_metadata is False and settings.video.keep_audio is False


def test_every_setting_is_described() -> None:
    from veilwatch import settings as module

    for model in (module.DetectorSettings, module.TrackerSettings, module.VeilSettings,
                  module.VideoOutputSettings, module.AnonymizeSettings):  # fmt: skip
        for name, field in model.model_fields.items():
            if name not in ("detector", "tracker", "veil", "video"):
                assert field.description, f"{model.__name__}.{name}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputNotFoundError("x"), 2),
        (UnsupportedInputError("x"), 2),
        (CorruptInputError("x"), 2),
        (OutputError("x"), 3),
        (ModelError("x"), 4),
        (VeilingError("x"), 5),
        (ConfigError("x"), 2),
        (WorkerCrashedError("x"), 5),
        (VeilwatchError("x"), 1),
    ],
)
def test_errors_own_their_exit_codes(error: VeilwatchError, code: int) -> None:
    assert error.exit_code == code
    assert isinstance(error, VeilwatchError)


def test_error_one_line_names_the_file_and_flattens_whitespace() -> None:
    error = CorruptInputError("damaged\n   after frame 3\t(reason)", path="/tmp/a.mp4")
    assert error.one_line() == "/tmp/a.mp4: damaged after frame 3 (reason)"
    assert isinstance(error, InputError)
    assert isinstance(ConfigError("bad"), ValueError)
    assert VeilwatchError("plain").one_line() == "plain"
