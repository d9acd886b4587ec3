"""JPEG traces in lossless files, and the camera/editor EXIF the keeper reads."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from photoembed.imaging.decode import decode_photo
from photoembed.imaging.jpegtrace import CLEAN_MAX, OWN_TABLES, TRACE_MIN, jpeg_tables, jpeg_trace
from photoembed.imaging.metadata import camera_name, read_exif
from tests.dedup.conftest import scene


def _decoded_jpeg(image: Image.Image, quality: int | None, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **({"quality": quality} if quality else {}), **options)
    buffer.seek(0)
    with Image.open(buffer) as jpeg:
        return jpeg.convert("RGB")


def _fine_tables() -> list[list[int]]:
    from photoembed.bench.keeper_eval import _camera_tables

    return _camera_tables()


@pytest.mark.parametrize("quality", [60, 75, 85, 95, 97])
def test_a_decoded_jpeg_shows_its_traces(quality: int) -> None:
    assert jpeg_trace(_decoded_jpeg(scene(1, (800, 600)), quality)) >= TRACE_MIN


def test_a_decoded_camera_jpeg_with_fine_tables_shows_its_traces() -> None:
    """A camera's "fine" tables (steps of 1-3 at low frequencies): counting every coefficient near 0 hid them."""
    assert jpeg_trace(_decoded_jpeg(scene(1, (800, 600)), None, qtables=_fine_tables())) >= TRACE_MIN


def _tables_of(image: Image.Image, **options: object) -> int | None:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    buffer.seek(0)
    with Image.open(buffer) as jpeg:
        return jpeg_tables(jpeg.quantization)


@pytest.mark.parametrize("quality", [30, 50, 75, 85, 90, 95, 100])
def test_libjpeg_standard_tables_give_their_quality(quality: int) -> None:
    assert _tables_of(scene(1, (64, 48)), quality=quality) == quality
    assert _tables_of(scene(1, (64, 48)).convert("L"), quality=quality) == quality


def test_an_encoders_own_tables_are_told_apart() -> None:
    assert _tables_of(scene(1, (64, 48)), qtables=_fine_tables()) == OWN_TABLES
    assert _tables_of(scene(1, (64, 48)), qtables="web_high") == OWN_TABLES
    assert jpeg_tables(None) is None
    assert jpeg_tables({}) is None


def test_decode_records_the_tables_of_jpegs_only() -> None:
    jpeg = io.BytesIO()
    scene(2, (320, 240)).save(jpeg, "JPEG", quality=88)
    assert decode_photo(jpeg.getvalue(), name="a.jpg", min_side=224, mtime=0.0).info.jpeg_tables == 88
    png = io.BytesIO()
    scene(2, (320, 240)).save(png, "PNG")
    assert decode_photo(png.getvalue(), name="a.png", min_side=224, mtime=0.0).info.jpeg_tables is None


def test_pixels_that_never_were_a_jpeg_show_none() -> None:
    clean = scene(2, (800, 600))
    assert jpeg_trace(clean) <= CLEAN_MAX
    # A JPEG resized afterwards has lost its grid.
    resized = _decoded_jpeg(scene(3, (1200, 900)), 85).resize((800, 600), Image.Resampling.LANCZOS)
    assert jpeg_trace(resized) < TRACE_MIN
    assert jpeg_trace(Image.new("RGB", (16, 16))) == 0.0


def test_lossless_files_carry_the_trace_into_photo_info() -> None:
    decoded = _decoded_jpeg(scene(4, (640, 480)), 80)
    png = io.BytesIO()
    decoded.save(png, "PNG")
    info = decode_photo(png.getvalue(), name="a.png", min_side=224, mtime=0.0).info
    assert info.jpeg_trace is not None
    assert info.jpeg_trace >= TRACE_MIN
    jpeg = io.BytesIO()
    scene(4, (640, 480)).save(jpeg, "JPEG", quality=80)
    assert decode_photo(jpeg.getvalue(), name="a.jpg", min_side=224, mtime=0.0).info.jpeg_trace is None


def test_camera_software_and_modify_date_are_read() -> None:
    exif = Image.Exif()
    exif[0x010F] = "NIKON CORPORATION"
    exif[0x0110] = "NIKON D750"
    exif[0x0131] = "Adobe Photoshop 25.0 (Windows)"
    exif[0x0132] = "2024:01:02 10:00:00"
    exif.get_ifd(0x8769)[0x9003] = "2020:09:13 14:26:40"
    summary = read_exif(exif.tobytes())
    assert summary.camera == "NIKON D750"
    assert summary.software == "Adobe Photoshop 25.0 (Windows)"
    assert summary.modified is not None
    assert summary.taken is not None
    assert summary.modified > summary.taken
    assert summary.taken_tag == "DateTimeOriginal"
    buffer = io.BytesIO()
    scene(5, (320, 240)).save(buffer, "JPEG", exif=exif.tobytes())
    info = decode_photo(buffer.getvalue(), name="x.jpg", min_side=100, mtime=0.0).info
    assert (info.camera, info.software) == ("NIKON D750", "Adobe Photoshop 25.0 (Windows)")


def test_camera_name() -> None:
    assert camera_name("Canon", "Canon EOS 5D") == "Canon EOS 5D"
    assert camera_name("Apple", "iPhone 13") == "Apple iPhone 13"
    assert camera_name(None, "X100V") == "X100V"
    assert camera_name("FUJIFILM", None) == "FUJIFILM"
    assert camera_name(None, None) is None
