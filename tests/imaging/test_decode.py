"""decode_photo and load_thumbnail on generated images of every format, mode and kind of damage."""

from __future__ import annotations

import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin, features

from photoembed.errors import KnownError
from photoembed.imaging.decode import MAX_PIXELS, DecodeError, decode_photo, load_thumbnail
from photoembed.imaging.formats import register_heif
from tests.imaging.images import BLUE, GREEN, RED, WHITE, close, encode, quadrant_colours, quadrants
from tests.imaging.test_metadata import local, make_exif

MTIME = 1_600_000_000.0
UPRIGHT = [RED, GREEN, BLUE, WHITE]
# The transpose that undoes each EXIF orientation, to write a file that reads upright once oriented.
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def decode(data: bytes, name: str, min_side: int = 0):  # type: ignore[no-untyped-def]
    return decode_photo(data, name=name, min_side=min_side, mtime=MTIME)


def stored_for(orientation: int, size: tuple[int, int]) -> Image.Image:
    upright = quadrants(size)
    method = INVERSE[orientation]
    return upright if method is None else upright.transpose(method)


@pytest.mark.parametrize(
    ("fmt", "name", "short", "params"),
    [
        ("JPEG", "a.jpg", "jpeg", {"quality": 95}),
        ("PNG", "a.png", "png", {}),
        ("WEBP", "a.webp", "webp", {"quality": 95}),
        ("TIFF", "a.tif", "tiff", {}),
        ("BMP", "a.bmp", "bmp", {}),
        ("GIF", "a.gif", "gif", {}),
    ],
)
def test_every_pillow_format(fmt: str, name: str, short: str, params: dict[str, object]) -> None:
    data = encode(quadrants((120, 80)), fmt, **params)
    result = decode(data, name)
    assert result.image.mode == "RGB"
    assert result.image.size == (120, 80)
    assert all(close(a, e) for a, e in zip(quadrant_colours(result.image), UPRIGHT, strict=True))
    assert (result.info.format, result.info.width, result.info.height) == (short, 120, 80)
    assert (result.info.taken, result.info.taken_from_exif, result.info.has_gps) == (MTIME, False, False)
    assert result.info.phash is None
    assert result.info.sharpness is None


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, BLUE, GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = decode(data, "anim.gif")
    assert close(result.image.getpixel((20, 15)), RED)  # type: ignore[arg-type]


def test_heic_full_and_embedded_thumbnail() -> None:
    register_heif()
    data = encode(quadrants((1200, 800)), "HEIF", quality=90, thumbnails=[256])
    small = decode(data, "IMG_0001.HEIC", min_side=64)
    # The 256 px embedded thumbnail: at least 2x the 64 px model input.
    assert small.image.size[0] == 256
    assert min(small.image.size) >= 128
    assert small.extent == (0.0, 0.0, *small.image.size)
    assert (small.info.format, small.info.width, small.info.height) == ("heic", 1200, 800)
    assert all(close(a, e) for a, e in zip(quadrant_colours(small.image), UPRIGHT, strict=True))
    middle = decode(data, "photo.heif", min_side=128)
    assert middle.image.size == (1200, 800)  # 256x171 is >= 128 but not 2x: the full image
    large = decode(data, "photo.heif", min_side=400)
    assert large.image.size == (1200, 800)  # thumbnail too small: full decode
    assert (large.info.format, large.info.width, large.info.height) == ("heif", 1200, 800)


def test_heic_orientation_is_applied() -> None:
    register_heif()
    data = encode(stored_for(6, (60, 40)), "HEIF", quality=90, exif=make_exif(orientation=6))
    result = decode(data, "turned.heic")
    assert result.image.size == (60, 40)
    assert (result.info.width, result.info.height) == (60, 40)
    assert all(close(a, e) for a, e in zip(quadrant_colours(result.image), UPRIGHT, strict=True))


def test_avif() -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    try:
        data = encode(quadrants((64, 48)), "AVIF", quality=90)
    except (OSError, KeyError) as exc:
        pytest.skip(f"no AVIF encoder: {exc}")
    result = decode(data, "a.avif")
    assert (result.info.format, result.image.size) == ("avif", (64, 48))
    assert all(close(a, e) for a, e in zip(quadrant_colours(result.image), UPRIGHT, strict=True))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(orientation: int) -> None:
    stored = stored_for(orientation, (64, 32))
    result = decode(encode(stored, "PNG", exif=make_exif(orientation=orientation)), "o.png")
    assert result.image.size == (64, 32)
    assert (result.info.width, result.info.height) == (64, 32)
    assert quadrant_colours(result.image) == UPRIGHT


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg_with_draft(orientation: int) -> None:
    stored = stored_for(orientation, (1600, 800))
    data = encode(stored, "JPEG", quality=90, exif=make_exif(orientation=orientation))
    result = decode(data, "o.jpg", min_side=100)
    width, height = result.image.size
    assert width > height
    assert min(width, height) >= 100
    assert (result.info.width, result.info.height) == (1600, 800)
    assert all(close(a, e) for a, e in zip(quadrant_colours(result.image), UPRIGHT, strict=True))


@pytest.mark.parametrize(
    ("size", "min_side", "scale"),
    [
        ((1000, 600), 100, 2),
        ((600, 2000), 224, 1),
        ((4000, 3000), 224, 4),
        ((8000, 6000), 224, 8),
        ((2000, 450), 224, 1),
        ((896, 896), 224, 2),
        ((895, 895), 224, 1),
        ((300, 200), 224, 1),
    ],
)
def test_jpeg_draft_keeps_shortest_side(
    size: tuple[int, int], min_side: int, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scales: list[int] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, req: tuple[int, int] | None):  # type: ignore[no-untyped-def]
        result = original_draft(self, mode, req)
        scales.append(self.decoderconfig[0] if self.decoderconfig else 1)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = encode(quadrants(size), "JPEG", quality=85)
    result = decode(data, "d.jpg", min_side=min_side)
    assert scales == ([scale] if min(size) >= 2 * min_side else [])
    assert min(result.image.size) >= min(2 * min_side, min(size))
    assert min(result.image.size) < 4 * min_side or scale == 1
    assert (result.info.width, result.info.height) == size
    assert result.extent == (0.0, 0.0, size[0] / scale, size[1] / scale)


def test_large_png_is_kept_full_size() -> None:
    # No box reduce before open_clip's bicubic resize: that is what made PNG drift from the reference.
    result = decode(encode(quadrants((1000, 700)), "PNG"), "big.png", min_side=224)
    assert result.image.size == (1000, 700)
    assert result.extent == (0.0, 0.0, 1000.0, 700.0)
    assert quadrant_colours(result.image) == UPRIGHT


def test_cmyk_jpeg_and_tiff() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red
    for fmt, name in (("JPEG", "c.jpg"), ("TIFF", "c.tif")):
        result = decode(encode(cmyk, fmt), name)
        assert result.image.mode == "RGB"
        assert close(result.image.getpixel((16, 16)), RED)  # type: ignore[arg-type]


def test_palette_with_and_without_transparency() -> None:
    palette = Image.new("P", (20, 20), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    palette.paste(2, (0, 0, 10, 20))
    plain = decode(encode(palette, "PNG"), "p.png").image
    assert plain.getpixel((5, 5)) == BLUE
    assert plain.getpixel((15, 5)) == RED
    transparent = decode(encode(palette, "GIF", transparency=2), "t.gif").image
    assert transparent.getpixel((5, 5)) == WHITE
    assert transparent.getpixel((15, 5)) == RED


def test_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 10))
    rgba.paste((0, 0, 0, 128), (10, 0, 20, 10))
    image = decode(encode(rgba, "PNG"), "a.png").image
    assert image.getpixel((5, 5)) == RED
    assert close(image.getpixel((15, 5)), (127, 127, 127), tolerance=2)  # type: ignore[arg-type]
    la = Image.new("LA", (10, 10), (0, 0))
    assert decode(encode(la, "PNG"), "la.png").image.getpixel((5, 5)) == WHITE
    webp = decode(encode(rgba, "WEBP", lossless=True), "a.webp").image
    assert webp.getpixel((5, 5)) == RED


def test_bilevel_and_grey() -> None:
    bilevel = Image.new("1", (16, 16), 0)
    bilevel.paste(1, (8, 0, 16, 16))
    image = decode(encode(bilevel, "BMP"), "b.bmp").image
    assert (image.getpixel((4, 4)), image.getpixel((12, 4))) == ((0, 0, 0), WHITE)
    grey = decode(encode(Image.new("L", (8, 8), 77), "PNG"), "g.png").image
    assert grey.getpixel((4, 4)) == (77, 77, 77)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    array = np.zeros((8, 16), dtype=np.uint16)
    array[:, 8:] = 32768
    array[:, :4] = 65535
    png = encode(Image.fromarray(array), "PNG")
    with Image.open(io.BytesIO(png)) as opened:
        assert opened.mode.startswith("I")
    image = decode(png, "deep.png").image
    assert image.getpixel((2, 2)) == WHITE
    assert image.getpixel((6, 2)) == (0, 0, 0)
    assert image.getpixel((12, 2)) == (128, 128, 128)


def test_float_tiff() -> None:
    array = np.full((8, 8), 0.5, dtype=np.float32)
    image = decode(encode(Image.fromarray(array), "TIFF"), "f.tif").image  # float32: mode "F"
    assert close(image.getpixel((4, 4)), (128, 128, 128), tolerance=1)  # type: ignore[arg-type]


def test_exif_date_and_gps_reach_the_info() -> None:
    exif = make_exif(original="2021:06:01 12:34:56", gps=(48.85, 2.35))
    info = decode(encode(quadrants((40, 30)), "JPEG", exif=exif), "e.jpg").info
    assert (info.taken, info.taken_from_exif, info.has_gps) == (local("2021:06:01 12:34:56"), True, True)
    webp = decode(encode(quadrants((40, 30)), "WEBP", exif=exif), "e.webp").info
    assert (webp.taken_from_exif, webp.has_gps) == (True, True)


def test_tiff_metadata_comes_from_the_file_itself() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0132] = "2018:03:04 05:06:07"
    result = decode(encode(stored_for(6, (60, 40)), "TIFF", exif=exif), "t.tiff")
    assert result.image.size == (60, 40)
    assert quadrant_colours(result.image) == UPRIGHT
    assert (result.info.taken, result.info.taken_from_exif) == (local("2018:03:04 05:06:07"), True)


def test_corrupt_exif_is_ignored_without_warnings() -> None:
    # Pillow warns "Corrupt EXIF data" while opening this; pytest runs with filterwarnings=error.
    garbage = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40
    result = decode(encode(quadrants((40, 30)), "JPEG", exif=garbage), "x.jpg")
    assert result.info.taken == MTIME
    assert not result.info.taken_from_exif


def test_content_decides_the_format() -> None:
    assert decode(encode(quadrants((20, 20)), "PNG"), "misnamed.jpg").info.format == "png"


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "empty.jpg", "file is empty"),
        (bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)), "r.jpg", "not an image"),
        (b"hello, world\n" * 50, "notes.png", "not an image"),
        (b"\xff\xd8\xff" + b"\x00" * 40, "header.jpg", "damaged JPEG"),
    ],
)
def test_bad_input_is_refused_with_a_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as caught:
        decode(data, name, min_side=224)
    assert isinstance(caught.value, KnownError)


@pytest.mark.parametrize("min_side", [0, 64])
def test_truncated_jpeg_is_an_error(min_side: int) -> None:
    noisy = Image.fromarray(np.random.default_rng(2).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    data = encode(noisy, "JPEG", quality=90)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(DecodeError, match=r"^truncated JPEG$"):
        decode(data[: len(data) // 2], "cut.jpg", min_side=min_side)


def test_truncated_png_is_an_error() -> None:
    noisy = Image.fromarray(np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    data = encode(noisy, "PNG")
    with pytest.raises(DecodeError, match="PNG"):
        decode(data[: len(data) // 2], "cut.png")


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF marker is rewritten to claim width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "name"), [(png_header(30000, 30000), "bomb.png"), (jpeg_claiming(30000, 30000), "bomb.jpg")]
)
def test_decompression_bomb_refused_before_decoding(data: bytes, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    start = time.perf_counter()
    with pytest.raises(DecodeError, match=r"^image too large: 30000x30000 px \(limit 200 MP\)$"):
        decode(data, name, min_side=224)
    assert time.perf_counter() - start < 1.0
    assert MAX_PIXELS == 200_000_000


def test_pillow_pixel_limit_neither_warns_nor_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for a 100-179 MP photo: above Pillow's warning threshold, below its hard limit (2x).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for fmt, name in (("PNG", "p.png"), ("TIFF", "t.tif"), ("GIF", "g.gif"), ("JPEG", "j.jpg")):
        result = decode(encode(quadrants((40, 40)), fmt), name)
        assert result.image.size == (40, 40)


def test_load_thumbnail_fits_and_is_upright(tmp_path: Path) -> None:
    path = tmp_path / "photo with spaces é.jpg"
    path.write_bytes(encode(stored_for(6, (2000, 1000)), "JPEG", exif=make_exif(orientation=6)))
    image = load_thumbnail(path, size=256)
    assert image.mode == "RGB"
    assert image.size == (256, 128)
    assert all(close(a, e) for a, e in zip(quadrant_colours(image), UPRIGHT, strict=True))


def test_load_thumbnail_failures(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="cannot read the file"):
        load_thumbnail(tmp_path / "missing.jpg", size=64)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DecodeError, match="file is empty"):
        load_thumbnail(tmp_path / "empty.png", size=64)


def test_concurrent_decoding_matches_sequential() -> None:
    register_heif()
    files = [
        (encode(stored_for(o, (400 + 8 * o, 300)), "JPEG", exif=make_exif(orientation=o)), f"{o}.jpg")
        for o in range(1, 9)
    ]
    files += [(encode(quadrants((300, 200)), "PNG"), "p.png"), (encode(quadrants((300, 200)), "HEIF"), "h.heic")]
    files += [(b"\xff\xd8\xff" + b"\x01" * 100, "bad.jpg")] * 4

    def run(item: tuple[bytes, str]) -> tuple[tuple[int, int], bytes] | str:
        try:
            result = decode(item[0], item[1], min_side=100)
        except DecodeError as exc:
            return str(exc)
        return result.image.size, result.image.tobytes()

    sequential = [run(item) for item in files * 3]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(run, files * 3)) == sequential


@pytest.mark.shared_data
def test_real_photos(shared_data: Path) -> None:
    photos = sorted((shared_data / "photos-large").glob("*.jpg"))
    assert photos
    for path in photos:
        result = decode(path.read_bytes(), path.name, min_side=224)
        with Image.open(path) as header:
            size = header.size
        assert (result.info.width, result.info.height) == size
        assert result.image.mode == "RGB"
        assert min(448, min(size)) <= min(result.image.size) < 896 or min(size) < 896
        ratio = result.image.size[0] / result.image.size[1]
        assert ratio == pytest.approx(size[0] / size[1], rel=0.02)


@pytest.mark.shared_data
def test_real_odd_files(shared_data: Path) -> None:
    folder = shared_data / "neardup" / "pdq-threatexchange"
    files = [path for path in sorted(folder.rglob("*")) if path.is_file() and path.suffix.lower() != ".csv"]
    if not files:
        pytest.skip("no PDQ test images")
    decoded = 0
    for path in files:
        try:
            result = decode(path.read_bytes(), path.name, min_side=64)
        except DecodeError:
            continue
        assert result.image.mode == "RGB"
        decoded += 1
    assert decoded >= len(files) - 2


# --------------------------------------------------------------- hostile sizes (issue 9, item 13)


def test_extreme_aspect_png_is_refused_with_a_reason() -> None:
    # A 100000x1 PNG is a few hundred bytes; resizing its short side to 224 would need ~15 GB.
    data = encode(Image.new("RGB", (100_000, 1), RED), "PNG")
    assert len(data) < 2000
    with pytest.raises(DecodeError, match=r"^extreme aspect ratio: 100000x1 px \(limit 100:1\)$"):
        decode(data, "strip.png", min_side=224)


def test_extreme_aspect_jpeg_is_refused_with_a_reason() -> None:
    data = encode(Image.new("RGB", (65_000, 2), BLUE), "JPEG")
    with pytest.raises(DecodeError, match=r"^extreme aspect ratio: 65000x2 px"):
        decode(data, "strip.jpg", min_side=224)


def test_wide_panorama_within_the_limit_decodes() -> None:
    result = decode(encode(Image.new("RGB", (4000, 200), GREEN), "JPEG"), "pano.jpg", min_side=224)
    assert (result.info.width, result.info.height) == (4000, 200)


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 frame size of a baseline JPEG (what a crafted or truncated header claims)."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def test_jpeg_whose_header_claims_far_more_pixels_than_it_holds_is_truncated() -> None:
    small = encode(Image.new("RGB", (16, 16), RED), "JPEG", quality=50)
    data = _patch_jpeg_size(small, 14_000, 14_000)
    assert len(data) < 1000
    # Pillow alone decodes it as a 196 MP grey image (libjpeg only warns about the missing data).
    with pytest.raises(DecodeError, match=r"^truncated JPEG: \d+ bytes cannot hold the 14000x14000 px"):
        decode(data, "claims.jpg", min_side=224)


def test_uniform_progressive_jpeg_is_not_mistaken_for_truncated() -> None:
    # The tightest honest JPEGs: one flat colour, optimised Huffman tables, progressive and grey.
    for mode in ("RGB", "L"):
        data = encode(Image.new(mode, (2000, 1500), 0), "JPEG", progressive=True, optimize=True, quality=30)
        result = decode(data, "flat.jpg", min_side=224)
        assert (result.info.width, result.info.height) == (2000, 1500)


# ------------------------------------------------------------ geometry of the reduced decodes


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_extent_places_the_original_in_a_reduced_jpeg(orientation: int) -> None:
    # 1003 x 605 at 1/4 decodes to 251 x 152: the rounding lands on the right or bottom edge, and
    # a flip moves it to the left or top, which the extent has to follow.
    upright = Image.new("RGB", (1003, 605), WHITE)
    stored = upright.transpose(INVERSE[orientation]) if INVERSE[orientation] else upright
    data = encode(stored, "JPEG", quality=90, exif=make_exif(orientation=orientation))
    result = decode(data, "e.jpg", min_side=75)
    assert (result.info.width, result.info.height) == (1003, 605)
    assert result.image.size == (251, 152)
    left, top, right, bottom = result.extent
    assert right - left == pytest.approx(1003 / 4)
    assert bottom - top == pytest.approx(605 / 4)
    # The stored image's rounding (right and bottom edges), seen in the upright frame: 251 - 1003/4 on x,
    # 152 - 605/4 on y, on the side each transposition moves those edges to.
    expected = {1: (0, 0), 2: (1, 0), 3: (1, 1), 4: (0, 1), 5: (0, 0), 6: (1, 0), 7: (1, 1), 8: (0, 1)}
    shifted_x, shifted_y = expected[orientation]
    assert left == pytest.approx(0.25 * shifted_x)
    assert top == pytest.approx(0.75 * shifted_y)
