"""The few EXIF facts photoembed needs: orientation, capture time, GPS presence, camera, editing software.

This is a small, bounds-checked reader of TIFF/EXIF directories rather than Pillow's ``getexif()``: Pillow
warns (``UserWarning: Corrupt EXIF data``) on the damaged EXIF that real photo libraries are full of, and
parses every tag, maker notes included, where we need six. Any damage reads as "tag absent"; nothing here
raises on garbage input. The same reader serves JPEG/PNG/WebP/HEIF EXIF blocks, TIFF files and the
TIFF-based camera RAW formats (CR2, NEF, ARW, DNG, ORF, RW2, PEF, SRW), whose first directory is EXIF.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import Image

# Tags (EXIF 2.32 / TIFF 6.0).
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_SOFTWARE = 0x0131
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_TAG_EXIF_IFD = 0x8769
_TAG_GPS_IFD = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_OFFSET_TIME_DIGITIZED = 0x9012
_TAG_SUBSEC_TIME = 0x9290
_TAG_SUBSEC_TIME_ORIGINAL = 0x9291
_TAG_SUBSEC_TIME_DIGITIZED = 0x9292
# (name, date tag, sub-second tag, offset tag), best first. DateTime is in IFD0, the rest in the EXIF IFD.
_DATE_TAGS = (
    ("DateTimeOriginal", _TAG_DATETIME_ORIGINAL, _TAG_SUBSEC_TIME_ORIGINAL, _TAG_OFFSET_TIME_ORIGINAL),
    ("DateTimeDigitized", _TAG_DATETIME_DIGITIZED, _TAG_SUBSEC_TIME_DIGITIZED, _TAG_OFFSET_TIME_DIGITIZED),
    ("DateTime", _TAG_DATETIME, _TAG_SUBSEC_TIME, _TAG_OFFSET_TIME),
)
_TAG_GPS_LATITUDE = 0x0002
_TAG_GPS_LONGITUDE = 0x0004

# TIFF field types -> size in bytes of one value.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_ASCII = 2
_TYPE_SHORT = 3
_TYPE_LONG = 4
_TYPE_RATIONAL = 5
_TYPE_IFD = 13

# 42 is TIFF; Olympus ORF uses "RO"/"SR" and Panasonic RW2 0x55 in the same place, with standard IFDs after.
_TIFF_MAGICS = frozenset({42, 0x4F52, 0x5352, 0x55})
# A real IFD has a few dozen entries; this bounds the work on garbage that claims 65535 of them.
_MAX_IFD_ENTRIES = 1024

_DATETIME_RE = re.compile(r"\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?")
_OFFSET_RE = re.compile(r"\s*([+-])(\d{1,2}):?(\d{2})")
_EARLIEST_YEAR = 1826  # the oldest surviving photograph; earlier years are placeholders or garbage

# EXIF orientation -> the transpose that shows the image upright (same table as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ExifSummary:
    """What photoembed reads from a photo's EXIF.

    Attributes:
        orientation: EXIF orientation 1..8 (1, upright, when absent or invalid).
        taken: Capture time as a unix timestamp, or None. Uses the EXIF offset tag when present, else
            reads the naive camera time as local time.
        taken_tag: Which tag ``taken`` came from: ``'DateTimeOriginal'``, ``'DateTimeDigitized'``,
            ``'DateTime'``, or None.
        has_gps: Whether a GPS latitude and longitude are recorded.
        camera: The camera's make and model ("Canon Canon EOS 5D" reads "Canon EOS 5D"), or None.
        software: The Software tag (camera firmware, or the program that last saved the photo), or None.
        modified: The IFD0 DateTime (when the file was last written by a camera or program), or None.
    """

    orientation: int = 1
    taken: float | None = None
    taken_tag: str | None = None
    has_gps: bool = False
    camera: str | None = None
    software: str | None = None
    modified: float | None = None


NO_EXIF = ExifSummary()


class _Reader:
    """Bounds-checked access to a TIFF structure; every read returns None when out of range."""

    def __init__(self, data: bytes, base: int, endian: str) -> None:
        self.data = data
        self.base = base  # offsets in the structure count from the byte-order mark
        self.endian = endian

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...] | None:
        start = self.base + offset
        size = struct.calcsize(fmt)
        if offset < 0 or start + size > len(self.data):
            return None
        return struct.unpack_from(self.endian + fmt, self.data, start)

    def raw(self, offset: int, size: int) -> bytes | None:
        start = self.base + offset
        if offset < 0 or size < 0 or start + size > len(self.data):
            return None
        return self.data[start : start + size]

    def ifd(self, offset: int) -> dict[int, tuple[int, int, int]]:
        """Entries of the directory at ``offset``: tag -> (type, count, offset of the entry's value)."""
        header = self.unpack("H", offset)
        if header is None:
            return {}
        count = min(header[0], _MAX_IFD_ENTRIES)
        entries: dict[int, tuple[int, int, int]] = {}
        for index in range(count):
            entry_offset = offset + 2 + 12 * index
            entry = self.unpack("HHI", entry_offset)
            if entry is None:
                break
            tag, kind, n = entry
            size = _TYPE_SIZES.get(kind)
            if size is None:
                continue
            if size * n <= 4:
                value_offset = entry_offset + 8  # small values sit in the entry itself
            else:
                pointer = self.unpack("I", entry_offset + 8)
                if pointer is None:
                    continue
                value_offset = pointer[0]
            entries.setdefault(tag, (kind, n, value_offset))
        return entries

    def integer(self, entry: tuple[int, int, int] | None) -> int | None:
        if entry is None or entry[1] < 1:
            return None
        kind, _, offset = entry
        fmt = {_TYPE_SHORT: "H", _TYPE_LONG: "I", _TYPE_IFD: "I"}.get(kind)
        if fmt is None:
            return None
        value = self.unpack(fmt, offset)
        return None if value is None else value[0]

    def text(self, entry: tuple[int, int, int] | None) -> str | None:
        if entry is None or entry[0] not in (_TYPE_ASCII, 7):  # some writers store dates as UNDEFINED
            return None
        value = self.raw(entry[2], min(entry[1], 64))
        if value is None:
            return None
        return value.split(b"\x00", 1)[0].decode("ascii", "replace")

    def any_nonzero_rational(self, entry: tuple[int, int, int] | None) -> bool:
        if entry is None or entry[0] != _TYPE_RATIONAL:
            return False
        for index in range(min(entry[1], 3)):
            value = self.unpack("II", entry[2] + 8 * index)
            if value is not None and value[0] != 0 and value[1] != 0:
                return True
        return False


def _tiff_reader(data: bytes) -> _Reader | None:
    base = 6 if data[:4] == b"Exif" else 0  # "Exif\0\0" header of JPEG APP1 and of some HEIF/WebP blocks
    order = data[base : base + 2]
    if order == b"II":
        endian = "<"
    elif order == b"MM":
        endian = ">"
    else:
        return None
    reader = _Reader(data, base, endian)
    magic = reader.unpack("H", 2)
    if magic is None or magic[0] not in _TIFF_MAGICS:
        return None
    return reader


def parse_exif_datetime(text: str | None, *, subsec: str | None = None, offset: str | None = None) -> float | None:
    """Turn an EXIF date ("2023:07:14 18:03:59") into a unix timestamp.

    Args:
        text: The EXIF date-time string. Common deviations ('-' or '/' separators, a 'T', no seconds,
            trailing NULs or spaces) are accepted.
        subsec: The matching SubSecTime* tag ("042" -> 0.042 s), if any.
        offset: The matching OffsetTime* tag ("+02:00"), if any; without it the time is read as local time.

    Returns:
        The timestamp, or None for blank, placeholder ("0000:00:00 00:00:00") or impossible dates.
    """
    if not text:
        return None
    match = _DATETIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    if year < _EARLIEST_YEAR:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second)  # EXIF times are naive
    except ValueError:
        return None
    if subsec:
        digits = "".join(ch for ch in subsec.strip() if ch.isdigit())[:6]
        if digits:
            moment += timedelta(microseconds=int(digits.ljust(6, "0")))
    zone = _parse_offset(offset)
    try:
        if zone is not None:
            return moment.replace(tzinfo=zone).timestamp()
        return moment.timestamp()  # naive: the machine's local time, as the camera's clock most likely was
    except (OverflowError, OSError, ValueError):
        return None


def _parse_offset(offset: str | None) -> timezone | None:
    if not offset:
        return None
    match = _OFFSET_RE.match(offset)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14):
        return None
    return timezone(-delta if sign == "-" else delta)


def read_exif(data: bytes | None) -> ExifSummary:
    """Read orientation, capture time and GPS presence from an EXIF block or a TIFF-structured file.

    Args:
        data: An EXIF block (with or without its ``Exif\\0\\0`` header), a whole TIFF file, or a TIFF-based
            RAW file. None or garbage gives :data:`NO_EXIF`.

    Returns:
        What could be read; damaged parts read as absent. The capture time prefers DateTimeOriginal,
        then DateTimeDigitized, then DateTime.
    """
    if not data:
        return NO_EXIF
    reader = _tiff_reader(data)
    if reader is None:
        return NO_EXIF
    first = reader.unpack("I", 4)
    if first is None:
        return NO_EXIF
    ifd0 = reader.ifd(first[0])
    orientation = reader.integer(ifd0.get(_TAG_ORIENTATION))
    if orientation not in _TRANSPOSE:
        orientation = 1

    exif_offset = reader.integer(ifd0.get(_TAG_EXIF_IFD))
    exif_ifd = reader.ifd(exif_offset) if exif_offset else {}
    taken: float | None = None
    taken_tag: str | None = None
    for tag_name, date_tag, subsec_tag, offset_tag in _DATE_TAGS:
        ifd = ifd0 if date_tag == _TAG_DATETIME else exif_ifd
        taken = parse_exif_datetime(
            reader.text(ifd.get(date_tag)),
            subsec=reader.text(exif_ifd.get(subsec_tag)),
            offset=reader.text(exif_ifd.get(offset_tag)),
        )
        if taken is not None:
            taken_tag = tag_name
            break

    gps_offset = reader.integer(ifd0.get(_TAG_GPS_IFD))
    has_gps = False
    if gps_offset:
        gps = reader.ifd(gps_offset)
        # Cameras without a fix often write an empty GPS directory, or zeros: that is no position.
        latitude, longitude = gps.get(_TAG_GPS_LATITUDE), gps.get(_TAG_GPS_LONGITUDE)
        has_gps = (
            latitude is not None
            and longitude is not None
            and (reader.any_nonzero_rational(latitude) or reader.any_nonzero_rational(longitude))
        )
    return ExifSummary(
        orientation=orientation,
        taken=taken,
        taken_tag=taken_tag,
        has_gps=has_gps,
        camera=camera_name(_clean(reader.text(ifd0.get(_TAG_MAKE))), _clean(reader.text(ifd0.get(_TAG_MODEL)))),
        software=_clean(reader.text(ifd0.get(_TAG_SOFTWARE))),
        modified=parse_exif_datetime(reader.text(ifd0.get(_TAG_DATETIME))),
    )


def _clean(text: str | None) -> str | None:
    """A printable, trimmed tag value, or None when blank."""
    if text is None:
        return None
    cleaned = "".join(ch for ch in text if ch.isprintable()).strip()
    return cleaned or None


def camera_name(make: str | None, model: str | None) -> str | None:
    """One name for a camera: the model, prefixed by the make unless the model already starts with it."""
    if not model:
        return make
    if not make or model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}"


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size an image of ``width`` x ``height`` pixels has once shown with its EXIF orientation."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Return ``image`` turned upright according to its EXIF orientation (the same image for 1)."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def orientation_from_libraw_flip(flip: int) -> int:
    """Translate LibRaw's ``sizes.flip`` (0..7; 0, 3, 5, 6 in practice) into its EXIF orientation."""
    return _LIBRAW_FLIP.get(flip, 1)


# LibRaw derives flip from the EXIF orientation with the table "50132467"[orientation & 7]; this inverts it.
_LIBRAW_FLIP: dict[int, int] = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
