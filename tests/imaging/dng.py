"""A minimal DNG writer for tests: LibRaw reads it, so the RAW path runs on a real (tiny) camera file.

The raw image is "linear raw" (already demosaiced RGB, 16 bits) with the four coloured quadrants of
:func:`tests.imaging.images.quadrants`; an optional JPEG preview sits in IFD0 with the raw data in a
SubIFD, as cameras lay out their DNGs.
"""

from __future__ import annotations

import struct

import numpy as np

_ASCII, _SHORT, _LONG, _BYTE, _SRATIONAL = 2, 3, 4, 1, 10


def _ascii(text: str) -> bytes:
    return text.encode() + b"\x00"


def _shorts(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


def _longs(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _ifd(entries: list[tuple[int, int, int, bytes]], at: int) -> bytes:
    """A little-endian IFD placed at offset ``at``, followed by the values that do not fit in entries."""
    entries = sorted(entries)
    size = 2 + 12 * len(entries) + 4
    table, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, count, payload in entries:
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHII", tag, kind, count, at + size + len(extra))
            extra += payload + b"\x00" * (len(payload) % 2)
    return table + _longs(0) + extra


def _common(orientation: int, date: str | None) -> list[tuple[int, int, int, bytes]]:
    entries = [
        (271, _ASCII, 5, _ascii("Test")),
        (272, _ASCII, 4, _ascii("Cam")),
        (274, _SHORT, 1, _shorts(orientation)),
        (50706, _BYTE, 4, bytes([1, 4, 0, 0])),  # DNGVersion
        (50708, _ASCII, 9, _ascii("Test Cam")),  # UniqueCameraModel
    ]
    if date is not None:
        entries.append((306, _ASCII, 20, _ascii(date)))
    return entries


def make_dng(
    size: tuple[int, int],
    *,
    orientation: int = 1,
    date: str | None = "2017:05:06 07:08:09",
    preview: tuple[bytes, tuple[int, int]] | None = None,
) -> bytes:
    """Write a DNG of ``size`` (stored, sensor orientation) with an optional (JPEG bytes, size) preview."""
    width, height = size
    rgb = np.full((height, width, 3), 60000, dtype="<u2")
    rgb[: height // 2, : width // 2] = (60000, 0, 0)
    rgb[: height // 2, width // 2 :] = (0, 60000, 0)
    rgb[height // 2 :, : width // 2] = (0, 0, 60000)
    pixels = rgb.tobytes()
    identity = b"".join(struct.pack("<ii", int(v) * 10000, 10000) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))

    def raw_ifd(at: int, strip: int, subfile: int) -> bytes:
        entries = [
            (254, _LONG, 1, _longs(subfile)),
            (256, _LONG, 1, _longs(width)),
            (257, _LONG, 1, _longs(height)),
            (258, _SHORT, 3, _shorts(16, 16, 16)),
            (259, _SHORT, 1, _shorts(1)),
            (262, _SHORT, 1, _shorts(34892)),  # LinearRaw
            (273, _LONG, 1, _longs(strip)),
            (277, _SHORT, 1, _shorts(3)),
            (278, _LONG, 1, _longs(height)),
            (279, _LONG, 1, _longs(len(pixels))),
            (284, _SHORT, 1, _shorts(1)),
            (50721, _SRATIONAL, 9, identity),  # ColorMatrix1
            (50778, _SHORT, 1, _shorts(21)),  # CalibrationIlluminant1: D65
        ]
        if preview is None:
            entries += _common(orientation, date)
        return _ifd(entries, at)

    header_size = 8
    raw_length = len(raw_ifd(header_size, 0, 0))
    raw = raw_ifd(header_size, header_size + raw_length, 0)
    body = raw + pixels
    if preview is None:
        return b"II*\x00" + _longs(header_size) + body
    jpeg, (preview_width, preview_height) = preview
    jpeg_at = header_size + len(body)
    first_at = jpeg_at + len(jpeg) + len(jpeg) % 2
    first = _ifd(
        [
            (254, _LONG, 1, _longs(1)),  # reduced-resolution copy
            (256, _LONG, 1, _longs(preview_width)),
            (257, _LONG, 1, _longs(preview_height)),
            (258, _SHORT, 3, _shorts(8, 8, 8)),
            (259, _SHORT, 1, _shorts(7)),  # JPEG
            (262, _SHORT, 1, _shorts(6)),  # YCbCr
            (273, _LONG, 1, _longs(jpeg_at)),
            (277, _SHORT, 1, _shorts(3)),
            (278, _LONG, 1, _longs(preview_height)),
            (279, _LONG, 1, _longs(len(jpeg))),
            (330, _LONG, 1, _longs(header_size)),  # SubIFDs: the raw image
            *_common(orientation, date),
        ],
        first_at,
    )
    return b"II*\x00" + _longs(first_at) + body + jpeg + b"\x00" * (len(jpeg) % 2) + first
