"""Hostile media through the real `veilwatch anonymize`: one clear line each, never a traceback or a dead worker."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import Pixels, cli_env, encode_image, error_lines, run_cli
from tests.hostile import (
    VIDEO_SEEDS,
    avif_without_primary_item,
    bmp_declaring,
    encode_video,
    hostile_corpus,
    png_declaring,
    tiff_with_text_strip_offsets,
)
from veilwatch.errors import CorruptInputError, InputError, OversizedInputError
from veilwatch.media.images import read_image
from veilwatch.media.limits import MAX_IMAGE_PIXELS

PR_CAPBSET_DROP = 24  # linux/prctl.h

HOSTILE_IMAGES = {
    "typeerror.tif": (tiff_with_text_strip_offsets, "TypeError"),
    "runtime.avif": (avif_without_primary_item, "RuntimeError"),
    "bomb.png": (lambda: png_declaring(20_000, 20_000), "400 megapixels"),  # Pillow's DecompressionBombError
    "big.png": (lambda: png_declaring(12_000, 10_000), "120 megapixels"),  # Pillow's bomb warning
    "strip.png": (lambda: png_declaring(1, 100_000_000), "65,535 on a side"),  # 74 bytes, 3.8 GB to decode
    "bomb.bmp": (lambda: bmp_declaring(30_000, 30_000), "900 megapixels"),
}


def _no_crash(stderr: bytes) -> None:
    text = stderr.decode(errors="replace")
    assert "Traceback" not in text, text
    assert "exited unexpectedly" not in text, text
    assert "crashed" not in text, text
    assert "internal error" not in text, text


@pytest.mark.parametrize("name", sorted(HOSTILE_IMAGES))
def test_hostile_images_are_refused_before_decoding(name: str) -> None:
    make, reason = HOSTILE_IMAGES[name]
    with pytest.raises(InputError, match=reason):
        read_image(make())


def test_the_74_byte_strip_is_refused_from_its_header() -> None:
    data = png_declaring(1, 100_000_000)
    assert len(data) < 100
    with pytest.raises(OversizedInputError, match="on a side"):
        read_image(data)


def test_pillow_bomb_limit_is_ours() -> None:
    from PIL import Image

    read_image(encode_image(tiny(), "PNG"))
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS


def tiny() -> Pixels:
    return np.full((8, 8, 3), 128, np.uint8)


def test_hostile_images_in_a_folder_fail_one_line_each_and_the_rest_is_done(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (make, _) in HOSTILE_IMAGES.items():
        (folder / name).write_bytes(make())
    (folder / "good.png").write_bytes(encode_image(tiny(), "PNG"))
    result = run_cli("anonymize", "in", "-o", "out", cwd=tmp_path)
    _no_crash(result.stderr)
    assert result.returncode == 2, result.stderr.decode()
    errors = error_lines(result.stderr)
    for name, (_, reason) in HOSTILE_IMAGES.items():
        mine = [line for line in errors if name in line]
        assert len(mine) == 1 and reason in mine[0], (name, errors)
    assert len(errors) == len(HOSTILE_IMAGES)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


@pytest.mark.parametrize("name", ["typeerror.tif", "runtime.avif", "bomb.png"])
def test_hostile_images_on_stdin_are_one_line(name: str) -> None:
    make, reason = HOSTILE_IMAGES[name]
    result = run_cli("anonymize", "-", "-o", "-", stdin=make())
    _no_crash(result.stderr)
    assert result.returncode == 2, result.stderr.decode()
    [line] = error_lines(result.stderr)
    assert line.startswith("error: <stdin>: ") and reason in line, line
    assert result.stdout == b""


# --- truncated video ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truncated_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 % of each kind of video whose truncation used to go unnoticed, and one whole MKV."""
    folder = tmp_path_factory.mktemp("truncated")
    for ext in ("mkv", "webm", "ts", "gif"):
        whole = encode_video(*VIDEO_SEEDS[ext], frames=40)
        (folder / f"cut.{ext}").write_bytes(whole[: int(len(whole) * 0.6)])
    (folder / "whole.mkv").write_bytes(encode_video(*VIDEO_SEEDS["mkv"], frames=40))
    return folder


def test_truncated_videos_are_reported_and_leave_no_output(truncated_videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("anonymize", truncated_videos, "-o", out)
    _no_crash(result.stderr)
    assert result.returncode == 2, result.stderr.decode()
    errors = error_lines(result.stderr)
    assert len(errors) == 4, errors
    for ext in ("mkv", "webm", "ts", "gif"):
        [line] = [e for e in errors if f"cut.{ext}" in e]
        assert "truncated" in line, line
    assert sorted(p.name for p in out.iterdir()) == ["whole.mkv"]  # no temporary file left either


# --- folders -----------------------------------------------------------------------------------


def test_same_stem_images_get_distinct_outputs(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    pixels = tiny()
    (folder / "a.png").write_bytes(encode_image(pixels, "PNG"))
    (folder / "a.bmp").write_bytes(encode_image(pixels, "BMP"))
    result = run_cli("anonymize", "pics", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bmp.png", "a.png"]


def _without_root_read_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (bounding set, so exec keeps them
    dropped). Root then obeys file modes as an ordinary owner does, and chmod 000 locks it out."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_subfolder_is_reported_and_the_rest_is_done(tmp_path: Path) -> None:
    for name in ("open", "locked"):
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / f"{name}.png").write_bytes(encode_image(tiny(), "PNG"))
    (tmp_path / "in" / "locked").chmod(0)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "veilwatch.cli.app", "anonymize", "in", "-o", "out"],
            cwd=tmp_path,
            capture_output=True,
            env=cli_env(),
            timeout=120,
            check=False,
            preexec_fn=_without_root_read_override if os.geteuid() == 0 else None,
        )
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)
    _no_crash(result.stderr)
    assert result.returncode == 2, result.stderr.decode()
    [line] = error_lines(result.stderr)
    assert "locked" in line and "cannot read this folder (Permission denied)" in line, line
    assert [p.name for p in (tmp_path / "out").rglob("*.png")] == ["open.png"]


# --- fuzz --------------------------------------------------------------------------------------


def test_a_seeded_fuzz_batch_is_veiled_or_refused_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cases = list(hostile_corpus(40, seed=13))
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    result = run_cli("anonymize", "in", "-o", "out", "-q", cwd=tmp_path, timeout=300)
    _no_crash(result.stderr)
    errors = error_lines(result.stderr)
    written = [p.name for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else []
    assert not [name for name in written if name.startswith(".")]
    for case in cases:
        stem = case.name.rsplit(".", 1)[0]
        refused = sum(case.name in line for line in errors)
        veiled = sum(name.startswith(stem + ".") for name in written)
        assert refused + veiled == 1, (case.name, refused, veiled)
    assert result.returncode == (2 if errors else 0)


def test_decoder_errors_are_corrupt_input() -> None:
    with pytest.raises(CorruptInputError, match="TypeError"):
        read_image(tiff_with_text_strip_offsets())
