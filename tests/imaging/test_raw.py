"""The camera RAW path, on tiny DNG files that LibRaw reads like a camera's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photoembed.imaging.decode import DecodeError, choose_raw_preview, decode_photo
from tests.imaging.dng import make_dng
from tests.imaging.images import BLUE, GREEN, RED, WHITE, close, encode, quadrant_colours
from tests.imaging.test_metadata import local, make_exif

MTIME = 1_600_000_000.0
PREVIEW_COLOUR = (10, 200, 30)


def preview(size: tuple[int, int], **params: object) -> tuple[bytes, tuple[int, int]]:
    return encode(Image.new("RGB", size, PREVIEW_COLOUR), "JPEG", quality=95, **params), size


def test_large_enough_preview_is_used_and_turned_upright() -> None:
    data = make_dng((512, 384), orientation=6, preview=preview((320, 240)))
    result = decode_photo(data, name="IMG_0001.DNG", min_side=100, mtime=MTIME)
    assert result.image.size == (240, 320)  # the 320x240 preview, upright (halving it would leave < 2x)
    assert close(result.image.getpixel((60, 80)), PREVIEW_COLOUR, tolerance=8)  # type: ignore[arg-type]
    info = result.info
    assert (info.format, info.width, info.height) == ("raw-dng", 384, 512)
    assert (info.taken, info.taken_from_exif, info.has_gps) == (local("2017:05:06 07:08:09"), True, False)


def test_small_preview_falls_back_to_the_raw_data() -> None:
    data = make_dng((512, 384), orientation=6, preview=preview((160, 120)))
    result = decode_photo(data, name="a.dng", min_side=150, mtime=MTIME)
    width, height = result.image.size
    assert min(width, height) >= 300
    assert height > width
    # The raw quadrants (red, green / blue, white) turned a quarter clockwise.
    expected = [BLUE, RED, WHITE, GREEN]
    assert all(close(a, e, tolerance=70) for a, e in zip(quadrant_colours(result.image), expected, strict=True))


def test_no_preview_at_all() -> None:
    result = decode_photo(make_dng((64, 48), date=None), name="b.dng", min_side=16, mtime=MTIME)
    assert result.image.mode == "RGB"
    assert min(result.image.size) >= 16
    assert (result.info.width, result.info.height) == (64, 48)
    assert (result.info.taken, result.info.taken_from_exif) == (MTIME, False)
    assert all(
        close(a, e, tolerance=70)
        for a, e in zip(quadrant_colours(result.image), [RED, GREEN, BLUE, WHITE], strict=True)
    )


def test_preview_with_its_own_orientation_is_not_turned_twice() -> None:
    stored = preview((320, 240), exif=make_exif(orientation=6))
    data = make_dng((512, 384), orientation=6, preview=stored)
    result = decode_photo(data, name="c.dng", min_side=100, mtime=MTIME)
    assert result.image.size == (240, 320)


def test_upright_preview_of_a_turned_raw_is_left_alone() -> None:
    data = make_dng((512, 384), orientation=6, preview=preview((240, 320)))  # already portrait
    result = decode_photo(data, name="d.dng", min_side=100, mtime=MTIME)
    assert result.image.size == (240, 320)


@pytest.mark.parametrize("name", ["x.nef", "x.cr2", "x.arw", "x.cr3", "x.raf"])
def test_damaged_raw_is_refused(name: str) -> None:
    noise = bytes(np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8))
    with pytest.raises(DecodeError, match=r"^unsupported or damaged RAW file \("):
        decode_photo(noise, name=name, min_side=224, mtime=MTIME)
    with pytest.raises(DecodeError, match="file is empty"):
        decode_photo(b"", name=name, min_side=224, mtime=MTIME)


def test_raw_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("photoembed.imaging.decode.MAX_PIXELS", 1000)
    with pytest.raises(DecodeError, match=r"^image too large: 48x64 px \(limit 0 MP\)$"):
        decode_photo(make_dng((64, 48), orientation=6), name="e.dng", min_side=16, mtime=MTIME)


@pytest.mark.parametrize(
    ("size", "need", "expected"),
    [
        (None, (448, 299), False),
        ((300, 200), (448, 299), False),
        ((320, 240), (448, 336), False),  # a 320x240 preview is >= 224 but not 2x a 224 px model
        ((448, 299), (448, 299), True),
        ((299, 448), (448, 299), True),  # stored in sensor orientation
        ((1616, 1080), (448, 299), True),
        ((1616, 1080), (6000, 4000), False),  # full size asked for: demosaic
    ],
)
def test_choose_raw_preview(size: tuple[int, int] | None, need: tuple[int, int], expected: bool) -> None:
    assert choose_raw_preview(size, need=need) is expected
