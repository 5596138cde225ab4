"""One engine settings model for `anonymize` and `serve`: TOML files, per-camera overrides, flags over files, docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.helpers import astronaut, encode_image, error_lines, run_cli
from veilwatch.config import parse_config
from veilwatch.errors import ConfigError
from veilwatch.settings import AnonymizeSettings, EngineSettings, LiveSettings

README = Path(__file__).resolve().parent.parent / "README.md"
CAMERA = {"name": "lobby", "source": "demo:walkers"}


def _anonymize(tmp_path: Path, config: str, *flags: str) -> tuple[int, list[str], dict[str, object]]:
    (tmp_path / "photo.jpg").write_bytes(encode_image(astronaut()[::2, ::2], "JPEG"))
    (tmp_path / "veil.toml").write_text(config, encoding="utf-8")
    result = run_cli(
        "anonymize", "photo.jpg", "-o", "out.jpg", "--overwrite", "--config", "veil.toml",
        "--report", "report.json", "-q", *flags, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text()) if (tmp_path / "report.json").exists() else {}
    return result.returncode, error_lines(result.stderr), report


def test_anonymize_takes_its_settings_from_a_file_and_flags_override_it(tmp_path: Path) -> None:
    config = '[detector]\nthreshold = 0.9\nmin_face = 20\n[veil]\nmethod = "solid"\n[video]\ncrf = 30\n'
    code, errors, report = _anonymize(tmp_path, config)
    assert (code, errors) == (0, [])
    settings = AnonymizeSettings.model_validate(report["settings"])
    assert (settings.detector.threshold, settings.detector.min_face) == (0.9, 20)
    assert (settings.veil.method, settings.video.crf, settings.tracker.hold_seconds) == ("solid", 30, 1.0)
    code, errors, report = _anonymize(tmp_path, config, "--threshold", "0.3", "--veil", "mosaic")
    assert (code, errors) == (0, [])
    settings = AnonymizeSettings.model_validate(report["settings"])
    assert (settings.detector.threshold, settings.detector.min_face) == (0.3, 20)  # the flag wins, the file stays
    assert settings.veil.method == "mosaic"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[veil]\ncolour = [1, 2, 3]\n", "veil.colour: unknown key"),
        ("[detector]\nthreshold = 3\n", "detector.threshold: Input should be less than 1"),
        ("[engine.detector]\nthreshold = 0.2\n", "engine: unknown key"),
        ("[detector\n", "cannot read config"),
    ],
)
def test_a_bad_anonymize_file_is_one_line_naming_the_key(tmp_path: Path, config: str, message: str) -> None:
    code, errors, _ = _anonymize(tmp_path, config)
    assert code == 2 and len(errors) == 1 and message in errors[0] and "veil.toml" in errors[0], errors


def test_cameras_override_the_engine_and_live_defaults_key_by_key() -> None:
    config = parse_config(
        {
            "engine": {"detector": {"threshold": 0.2}, "veil": {"method": "mosaic"}},
            "live": {"deadline_s": 0.8, "jpeg_quality": 70},
            "cameras": [
                {**CAMERA, "engine": {"veil": {"shape": "ellipse"}}, "live": {"fps": 15, "max_queue": 4}},
                {"name": "yard", "source": "demo:walkers", "width": 640, "height": 360},
            ],
        }
    )
    lobby, yard = config.cameras
    assert lobby.engine.detector.threshold == yard.engine.detector.threshold == 0.2
    assert lobby.engine.detector.min_face == 16.0 and lobby.engine.detector.threads == 1  # live defaults stay
    assert (lobby.engine.veil.method, lobby.engine.veil.shape) == ("mosaic", "ellipse")
    assert (yard.engine.veil.method, yard.engine.veil.shape) == ("mosaic", "box")
    assert (lobby.live.fps, lobby.live.max_queue, lobby.live.deadline_s, lobby.live.jpeg_quality) == (15, 4, 0.8, 70)
    assert (yard.width, yard.height, yard.fps, yard.live.deadline_s) == (640, 360, 10.0, 0.8)
    assert config.engine.detector.min_face == 16.0


@pytest.mark.parametrize(
    ("camera", "where"),
    [
        ({"live": {"fsp": 3}}, "cameras.0.live.fsp: unknown key"),
        ({"live": {"deadline_s": 0}}, "cameras.0.live.deadline_s"),
        ({"engine": {"detector": {"treshold": 0.3}}}, "cameras.0.engine.detector.treshold: unknown key"),
        ({"engine": {"detector": {"min_face": 30, "max_face": 20}}}, "max_face (20.0) must exceed min_face"),
        ({"engine": {"video": {"crf": 3}}}, "cameras.0.engine.video: unknown key"),
    ],
)
def test_bad_camera_settings_name_the_key(camera: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"cameras": [{**CAMERA, **camera}]})
    assert where in str(error.value)


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    """Every (dotted name, description) of a settings model, sub-models included."""
    found = []
    for name, field in model.model_fields.items():
        found.append((prefix + name, field.description))
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += _fields(kind, f"{prefix}{name}.")
    return found


@pytest.mark.parametrize("model", [EngineSettings, AnonymizeSettings, LiveSettings])
def test_every_setting_is_described_and_documented_in_the_readme(model: type[BaseModel]) -> None:
    readme = README.read_text(encoding="utf-8")
    for name, description in _fields(model):
        assert description, f"{model.__name__}.{name} has no description"
        leaf = name.rsplit(".", 1)[-1]
        assert re.search(rf"`{re.escape(leaf)}`|\[([\w.]+\.)?{re.escape(leaf)}\]|^{re.escape(leaf)} =", readme, re.M), (
            f"{name} is not in README.md"
        )
