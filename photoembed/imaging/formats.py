"""Which files are photos, what format each one is, and how "original" a format is.

Everything here is pure and cheap except :func:`register_heif`, which plugs pillow-heif into Pillow. That
is done on first use rather than at import, so that importing photoembed changes no library's state.
"""

from __future__ import annotations

import os
import threading

#: Camera RAW extensions, decoded through LibRaw (rawpy), mostly from their embedded JPEG preview.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf", ".pef", ".srw"}
)

_FORMAT_BY_EXTENSION: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".gif": "gif",
    ".heic": "heic",
    ".heif": "heif",
    ".avif": "avif",
    **{ext: "raw-" + ext[1:] for ext in RAW_EXTENSIONS},
}

#: Every extension photoembed indexes (lowercase, with the dot).
PHOTO_EXTENSIONS: frozenset[str] = frozenset(_FORMAT_BY_EXTENSION)

#: Short format name of a file whose extension is not a photo extension.
UNKNOWN_FORMAT = "unknown"

# How close a format is to what the camera captured, for keeper rules: a RAW holds the sensor data; HEIC is
# what phones write natively; PNG, TIFF and BMP are lossless, so a copy in them lost nothing after its
# source; JPEG is the usual camera output but lossy; WebP and AVIF are almost always re-encodes made for
# the web; GIF has lost colours to its 256-entry palette.
_RANK_RAW = 60
_FORMAT_RANK: dict[str, int] = {
    "heic": 50,
    "heif": 50,
    "png": 40,
    "tiff": 40,
    "bmp": 35,
    "jpeg": 30,
    "avif": 20,
    "webp": 20,
    "gif": 10,
}


def _extension(name: str) -> str:
    # os.path rather than PurePath: this runs once per directory entry while scanning a library.
    return os.path.splitext(name)[1].lower()


def is_photo_name(name: str) -> bool:
    """Tell whether a file name has one of the photo extensions (case-insensitive).

    Args:
        name: A file name or path; only its last suffix counts.
    """
    return _extension(name) in PHOTO_EXTENSIONS


def format_of(name: str) -> str:
    """The short format name a file's extension stands for.

    Args:
        name: A file name or path.

    Returns:
        ``'jpeg'``, ``'png'``, ``'webp'``, ``'tiff'``, ``'bmp'``, ``'gif'``, ``'heic'``, ``'heif'``,
        ``'avif'``, ``'raw-<ext>'`` (``'raw-cr2'``, ``'raw-nef'``, ...), or :data:`UNKNOWN_FORMAT`.
    """
    return _FORMAT_BY_EXTENSION.get(_extension(name), UNKNOWN_FORMAT)


def is_raw_format(fmt: str | None) -> bool:
    """Tell whether a short format name (see :func:`format_of`) is a camera RAW format."""
    return fmt is not None and fmt.startswith("raw-")


def format_rank(fmt: str | None) -> int:
    """Rank a format by how close it is to the captured original: higher is closer.

    RAW > HEIC/HEIF > PNG/TIFF > BMP > JPEG > WebP/AVIF > GIF > unknown (0). Keeper rules use it to keep
    the best copy of a photo stored in several formats.
    """
    if fmt is None:
        return 0
    if is_raw_format(fmt):
        return _RANK_RAW
    return _FORMAT_RANK.get(fmt, 0)


def is_original_format(fmt: str | None) -> bool:
    """Tell whether a format is a camera's own capture format (RAW, HEIC/HEIF).

    JPEG, PNG and the web formats are what such originals are usually exported to.
    """
    return format_rank(fmt) >= _FORMAT_RANK["heic"]


_heif_lock = threading.Lock()
_heif_registered = False


def register_heif() -> None:
    """Plug pillow-heif's HEIF/HEIC opener into Pillow, once per process; later calls do nothing.

    AVIF is left to Pillow's own plugin (Pillow >= 11.2 ships one; pillow-heif 1.x no longer decodes AVIF).
    Depth and auxiliary images are not loaded: photoembed only ever shows the primary image.

    Thread-safe.
    """
    global _heif_registered  # a once-per-process switch, guarded by its lock
    with _heif_lock:  # uncontended after the first call; the check must happen under it
        if _heif_registered:
            return
        # Imported here: registering is the side effect, and it must not happen at import time.
        from pillow_heif import register_heif_opener

        register_heif_opener(thumbnails=True, depth_images=False, aux_images=False)
        _heif_registered = True
