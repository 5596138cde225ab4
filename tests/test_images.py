"""Still images with real Pillow: faces veiled, metadata stripped, orientation applied, damage reported."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin

from tests.helpers import (
    ASTRONAUT_FACE,
    XMP_PACKET,
    astronaut,
    encode_image,
    exif_with_gps_and_thumbnail,
    face_detail,
)
from veilwatch.errors import CorruptInputError, UnsupportedInputError
from veilwatch.media.images import (
    format_for_suffix,
    image_output_suffix,
    output_format,
    read_image,
    write_image,
)
from veilwatch.pipeline.engine import Engine
from veilwatch.pipeline.jobs import FileResult, veil_image
from veilwatch.pipeline.tasks import Task
from veilwatch.settings import AnonymizeSettings

SOI = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def metadata_engine() -> Engine:
    return Engine(AnonymizeSettings(keep_metadata=True))


def _veil(engine: Engine, source: Path, output: Path) -> FileResult:
    return veil_image(Task(str(source), str(output), "image"), engine)


def _spy_jpeg(path: Path, orientation: int = 1) -> Path:
    data = encode_image(
        astronaut(),
        "JPEG",
        quality=95,
        exif=exif_with_gps_and_thumbnail(orientation),
        xmp=XMP_PACKET,
        comment=b"secret comment",
    )
    path.write_bytes(data)
    return path


def test_jpeg_face_is_veiled_and_every_metadata_block_is_gone(engine: Engine, tmp_path: Path) -> None:
    source = _spy_jpeg(tmp_path / "spy.jpg")
    raw = source.read_bytes()
    with Image.open(source) as original:  # the fixture really carries all of it
        exif = original.getexif()
        assert exif[0x010F] == "SpyCam Inc"
        assert exif.get_ifd(0x8825)[2] == (48.0, 51.0, 29.59)
        assert b"Exif" in raw and b"http://ns.adobe.com/xap" in raw and b"secret" in raw
        assert raw.count(SOI) == 2  # the picture and its embedded thumbnail
        pixels = np.asarray(original.convert("RGB"))
    result = _veil(engine, source, tmp_path / "out.jpg")
    assert result.faces == 1
    out = (tmp_path / "out.jpg").read_bytes()
    with Image.open(tmp_path / "out.jpg") as veiled:
        assert veiled.format == "JPEG"
        assert len(veiled.getexif()) == 0
        assert "xmp" not in veiled.info and "comment" not in veiled.info
        assert "icc_profile" not in veiled.info
        veiled_pixels = np.asarray(veiled.convert("RGB"))
    for marker in (b"Exif", b"http://ns.adobe.com/xap", b"secret", b"SpyCam"):
        assert marker not in out
    assert out.count(SOI) == 1  # no thumbnail of the unveiled face
    assert face_detail(pixels, veiled_pixels, ASTRONAUT_FACE) < 0.3
    # the rest of the picture survives (JPEG re-encoding at quality 95)
    assert np.abs(pixels[300:].astype(int) - veiled_pixels[300:].astype(int)).mean() < 4


def test_exif_orientation_is_applied_to_the_pixels(engine: Engine, tmp_path: Path) -> None:
    source = _spy_jpeg(tmp_path / "turned.jpg", orientation=6)  # display: rotate 90° clockwise
    with Image.open(source) as img:
        assert img.size == (512, 512)
        upright = np.asarray((ImageOps.exif_transpose(img) or img).convert("RGB"))
    wide = tmp_path / "wide.jpg"
    crop = astronaut()[:, :400]  # not square, so a turn shows in the size
    wide.write_bytes(encode_image(crop, "JPEG", quality=95, exif=exif_with_gps_and_thumbnail(6)))
    _veil(engine, wide, tmp_path / "wide_out.jpg")
    with Image.open(tmp_path / "wide_out.jpg") as out:
        assert out.size == (512, 400)  # turned, and the tag that would turn it again is gone
        assert out.getexif().get(0x0112) is None
        turned = np.asarray(out.convert("RGB"))
    expected = np.rot90(crop, -1)
    assert np.abs(turned[:, :100].astype(int) - expected[:, :100].astype(int)).mean() < 4
    loaded = read_image(str(source))
    np.testing.assert_array_equal(loaded.pixels, upright)


def test_keep_metadata_keeps_exif_but_marks_it_upright(metadata_engine: Engine, tmp_path: Path) -> None:
    source = _spy_jpeg(tmp_path / "spy.jpg", orientation=6)
    _veil(metadata_engine, source, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        exif = out.getexif()
        assert exif[0x010F] == "SpyCam Inc"
        assert exif[0x0112] == 1
        assert out.size == (512, 512)


def test_png_text_chunks_and_exif_are_gone(engine: Engine, tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "secret author")
    info.add_text("Comment", "secret place", zip=True)
    info.add_itxt("Description", "secret description", lang="en")
    source = tmp_path / "note.png"
    source.write_bytes(encode_image(astronaut(), "PNG", pnginfo=info, exif=exif_with_gps_and_thumbnail()))
    with Image.open(source) as img:
        assert isinstance(img, PngImagePlugin.PngImageFile)
        assert {"Author", "Comment", "Description"} <= set(img.text)
    _veil(engine, source, tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"secret"):
        assert chunk not in data
    with Image.open(tmp_path / "out.png") as out:
        assert isinstance(out, PngImagePlugin.PngImageFile)
        assert out.text == {}
        assert face_detail(astronaut(), np.asarray(out.convert("RGB")), ASTRONAUT_FACE) < 0.3


def test_png_alpha_is_kept(engine: Engine, tmp_path: Path) -> None:
    rgba = np.dstack([astronaut(), np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))])
    source = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(source)
    _veil(engine, source, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out)[:, :, 3], rgba[:, :, 3])


@pytest.mark.parametrize(
    ("fmt", "suffix", "expected_format"),
    [("WEBP", ".webp", "WEBP"), ("BMP", ".bmp", "PNG"), ("TIFF", ".tif", "PNG")],
)
def test_other_formats_are_written_back_in_kind(
    engine: Engine, tmp_path: Path, fmt: str, suffix: str, expected_format: str
) -> None:
    source = tmp_path / f"in{suffix}"
    source.write_bytes(encode_image(astronaut(), fmt))
    target = tmp_path / f"out{image_output_suffix(source.name)}"
    assert _veil(engine, source, target).faces >= 1
    with Image.open(target) as out:
        assert out.format == expected_format
        assert face_detail(astronaut(), np.asarray(out.convert("RGB")), ASTRONAUT_FACE) < 0.3


def test_format_tables() -> None:
    assert output_format("MPO") == "JPEG"
    assert output_format("GIF") == "PNG"
    assert format_for_suffix(".JPEG") == "JPEG"
    assert format_for_suffix(".bmp") is None
    assert image_output_suffix("a.b.JPG") == ".jpg"
    assert image_output_suffix("scan.tiff") == ".png"
    assert image_output_suffix("noext") == ".png"


def test_write_image_puts_no_metadata_by_itself() -> None:
    out = io.BytesIO()
    write_image(astronaut(), out, "JPEG", quality=80)
    data = out.getvalue()
    assert data.startswith(SOI)
    assert b"Exif" not in data


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedInputError, match="not an image format"):
        read_image(str(path))


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    data = encode_image(astronaut(), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match="damaged or truncated"):
        read_image(str(path))


def test_animated_gif_is_refused_as_an_image() -> None:
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (0, 128, 255)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedInputError, match="animated GIF"):
        read_image(out.getvalue())


def test_16_bit_greyscale_png_keeps_its_tones(tmp_path: Path) -> None:
    grey8 = np.asarray(Image.fromarray(astronaut()).convert("L"))
    path = tmp_path / "deep.png"
    Image.fromarray(grey8.astype(np.uint16) * 257).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"
    loaded = read_image(str(path))
    assert np.abs(loaded.pixels[:, :, 0].astype(int) - grey8.astype(int)).mean() < 2
