"""EXIF reading: orientation, capture time, GPS presence, robustness to garbage."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest
from PIL import Image

from photoembed.imaging.metadata import (
    NO_EXIF,
    apply_orientation,
    orientation_from_libraw_flip,
    oriented_size,
    parse_exif_datetime,
    read_exif,
)


def make_exif(
    *,
    orientation: int | None = None,
    original: str | None = None,
    digitized: str | None = None,
    datetime_tag: str | None = None,
    offset: str | None = None,
    subsec: str | None = None,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """EXIF bytes written by Pillow, an implementation independent of the reader under test."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if datetime_tag is not None:
        exif[0x0132] = datetime_tag
    sub = exif.get_ifd(0x8769)
    if original is not None:
        sub[0x9003] = original
    if digitized is not None:
        sub[0x9004] = digitized
    if offset is not None:
        sub[0x9011] = offset
    if subsec is not None:
        sub[0x9291] = subsec
    if gps is not None:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"
        gps_ifd[2] = (gps[0], 0.0, 0.0)
        gps_ifd[3] = "E"
        gps_ifd[4] = (gps[1], 0.0, 0.0)
    return exif.tobytes()  # starts with the "Exif\0\0" header, as in a JPEG APP1 segment


def local(text: str) -> float:
    return datetime.strptime(text, "%Y:%m:%d %H:%M:%S").timestamp()  # naive, as EXIF times are


def test_orientation_and_dates_in_priority_order() -> None:
    summary = read_exif(
        make_exif(
            orientation=6,
            original="2021:06:01 12:34:56",
            digitized="2021:06:02 00:00:00",
            datetime_tag="2022:01:01 00:00:00",
        )
    )
    assert summary.orientation == 6
    assert summary.taken == local("2021:06:01 12:34:56")
    assert summary.taken_tag == "DateTimeOriginal"
    assert not summary.has_gps


def test_falls_back_to_digitized_then_datetime() -> None:
    digitized = read_exif(make_exif(digitized="2020:02:29 23:59:59", datetime_tag="2022:01:01 00:00:00"))
    assert (digitized.taken, digitized.taken_tag) == (local("2020:02:29 23:59:59"), "DateTimeDigitized")
    plain = read_exif(make_exif(original="0000:00:00 00:00:00", datetime_tag="2022:01:01 10:00:00"))
    assert (plain.taken, plain.taken_tag) == (local("2022:01:01 10:00:00"), "DateTime")


def test_offset_and_subseconds() -> None:
    summary = read_exif(make_exif(original="2021:06:01 12:00:00", offset="+02:00", subsec="25"))
    expected = datetime(2021, 6, 1, 10, 0, 0, 250000, tzinfo=UTC).timestamp()
    assert summary.taken == pytest.approx(expected)


def test_gps_needs_a_position() -> None:
    assert read_exif(make_exif(gps=(48.85, 2.35))).has_gps
    assert not read_exif(make_exif(gps=(0.0, 0.0))).has_gps  # no fix
    exif = Image.Exif()
    exif.get_ifd(0x8825)[0] = b"\x02\x02\x00\x00"  # only GPSVersionID
    assert not read_exif(exif.tobytes()).has_gps


def test_big_endian_without_exif_header() -> None:
    # IFD0 with Orientation=8 and DateTime, written by hand in Motorola order.
    date = b"2019:12:31 08:30:00\x00"
    entries = struct.pack(">HHII", 0x0112, 3, 1, 8 << 16) + struct.pack(">HHII", 0x0132, 2, len(date), 38)
    data = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + b"\x00" * 4 + date
    summary = read_exif(data)
    assert summary.orientation == 8
    assert summary.taken == local("2019:12:31 08:30:00")


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"Exif\x00\x00",
        b"Exif\x00\x00garbage",
        b"II*\x00\xff\xff\xff\x7f",
        b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40,  # claims 65535 entries
        b"MM\x00*\x00\x00\x00\x08\x00\x02\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00"
        b"\x87\x69\x00\x04\x00\x00\x00\x01\x7f\xff\xff\xff",  # orientation 9, EXIF IFD far away
        bytes(range(256)) * 4,
    ],
)
def test_garbage_reads_as_absent(garbage: bytes) -> None:
    summary = read_exif(garbage)
    assert summary.orientation == 1
    assert summary.taken is None
    assert not summary.has_gps


def test_none_is_no_exif() -> None:
    assert read_exif(None) is NO_EXIF


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023:07:14 18:03:59", "2023:07:14 18:03:59"),
        ("2023-07-14 18:03:59\x00", "2023:07:14 18:03:59"),
        ("2023:07:14T18:03:59", "2023:07:14 18:03:59"),
        ("2023:07:14 18:03", "2023:07:14 18:03:00"),
        ("0000:00:00 00:00:00", None),
        ("    :  :     :  :  ", None),
        ("2023:13:40 25:00:00", None),
        ("1200:01:01 00:00:00", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_exif_datetime(text: str | None, expected: str | None) -> None:
    assert parse_exif_datetime(text) == (None if expected is None else local(expected))


def test_parse_negative_offset() -> None:
    moment = parse_exif_datetime("2021:01:01 00:00:00", offset="-05:30")
    assert moment == datetime(2021, 1, 1, tzinfo=timezone(-timedelta(hours=5, minutes=30))).timestamp()
    assert parse_exif_datetime("2021:01:01 00:00:00", offset="garbage") == local("2021:01:01 00:00:00")


def test_orientation_helpers() -> None:
    assert oriented_size(40, 30, 1) == (40, 30)
    assert oriented_size(40, 30, 3) == (40, 30)
    assert all(oriented_size(40, 30, o) == (30, 40) for o in (5, 6, 7, 8))
    image = Image.new("RGB", (4, 2))
    assert apply_orientation(image, 1) is image
    assert apply_orientation(image, 6).size == (2, 4)
    assert [orientation_from_libraw_flip(f) for f in (0, 3, 5, 6, 42)] == [1, 3, 8, 6, 1]
