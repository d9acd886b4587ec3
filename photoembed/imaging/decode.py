"""Decode photo files into upright RGB images, fast, and refuse bad ones with a reason a user can read.

This is the ingest hot path, so each format takes its cheapest road to an image whose shortest side is
still at least the size the caller needs (the model's input size):

- JPEG: DCT scaling (``Image.draft``) decodes at 1/2, 1/4 or 1/8 of the size for a fraction of the cost.
- HEIC/HEIF: the embedded thumbnail when it is large enough (pillow-heif's ``draft``), else the full image.
- Camera RAW: the embedded JPEG preview when it is large enough, else LibRaw's half-size demosaic.
- Other formats are decoded in full, then box-reduced by an integer factor.

EXIF orientation is applied last, on the small image. Metadata comes from :mod:`photoembed.imaging.metadata`.

Pillow is used without touching its global state: ``LOAD_TRUNCATED_IMAGES`` stays False, so a truncated
file is an error rather than a half-grey image, and ``MAX_IMAGE_PIXELS`` is left alone. Instead the file is
identified through the plugins' own openers (which read the header only), its size is checked against
:data:`MAX_PIXELS`, and only then is it decoded. Pillow's ``Image.open`` is not used because it applies its
own, lower pixel limit (89 MP warns, 179 MP fails), which would refuse 108 and 200 MP phone photos.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from PIL import Image, ImageFile

from photoembed.errors import KnownError
from photoembed.imaging.formats import format_of, is_raw_format, register_heif
from photoembed.imaging.metadata import (
    NO_EXIF,
    ExifSummary,
    apply_orientation,
    orientation_from_libraw_flip,
    oriented_size,
    read_exif,
)
from photoembed.imaging.safe_open import FileTooLargeError, UnsafeFileError, read_regular
from photoembed.storage.records import PhotoInfo

logger = logging.getLogger(__name__)

#: Largest image decoded, in pixels (width x height). 200 MP admits the largest phone sensors (16320 x 12240)
#: while refusing decompression bombs, which claim sizes of gigapixels in a few bytes.
MAX_PIXELS = 200_000_000

_WHITE = (255, 255, 255)
_ORIENTATION_TAG = 0x0112

# Pillow formats photoembed decodes, in the order they are tried. HEIF goes before AVIF because both claim
# the generic "mif1" brand and only the HEIF opener tells HEVC from AV1 content cleanly. Formats outside this
# list are refused on purpose: a file named .jpg is never handed to, say, the EPS plugin and Ghostscript.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF", "BMP", "GIF")
_SHORT_FORMAT = {
    "JPEG": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "TIFF": "tiff",
    "BMP": "bmp",
    "DIB": "bmp",
    "GIF": "gif",
}
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

# What a decoder may raise on bad data. Narrower than Exception on purpose: an AttributeError or NameError
# is a bug in photoembed and must surface as one.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
    MemoryError,
)

_Opener = tuple[Callable[[IO[bytes], str], ImageFile.ImageFile], Callable[[bytes], bool | str] | None]


class DecodeError(KnownError):
    """A photo could not be decoded; the message is the short reason shown to the user."""


@dataclass(frozen=True)
class DecodedPhoto:
    """A decoded photo, ready for embedding.

    Attributes:
        image: RGB image, EXIF orientation applied. Its shortest side is at least the ``min_side`` asked
            for whenever the original is that large, and below ``2 * min_side`` for most formats (JPEG
            DCT scaling, integer box reduction); embedded previews can be larger.
        info: Format, original (oriented) size, capture time and GPS presence. ``phash`` and
            ``sharpness`` are left None for the fingerprint step.
    """

    image: Image.Image
    info: PhotoInfo


class _Decoded(NamedTuple):
    image: Image.Image
    format: str
    width: int
    height: int
    exif: ExifSummary


def decode_photo(data: bytes, *, name: str, min_side: int, mtime: float) -> DecodedPhoto:
    """Decode a photo file's bytes into an upright RGB image and its metadata.

    Thread-safe: called from the ingest decode pool.

    Args:
        data: The whole file.
        name: The file name; its extension routes RAW files to LibRaw and names HEIF files 'heic' or
            'heif'. Other formats are recognised by content, so a PNG named .jpg decodes as a PNG.
        min_side: Shortest side the image must keep when the original allows; 0 decodes at full size.
        mtime: The file's modification time (unix seconds), the capture time when EXIF has none.

    Returns:
        The image and its :class:`PhotoInfo`.

    Raises:
        DecodeError: The file is empty, not an image, damaged, truncated, or too large.
    """
    if min_side < 0:
        raise ValueError(f"min_side must be >= 0, not {min_side}")
    decoded = _decode(data, name=name, min_side=min_side)
    exif = decoded.exif
    info = PhotoInfo(
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        taken=exif.taken if exif.taken is not None else mtime,
        taken_from_exif=exif.taken is not None,
        has_gps=exif.has_gps,
    )
    return DecodedPhoto(image=decoded.image, info=info)


def load_thumbnail(path: Path, *, size: int) -> Image.Image:
    """Load a photo as an upright RGB image that fits in ``size`` x ``size``, for display.

    Uses the same fast paths as :func:`decode_photo` (DCT scaling, embedded previews). Thread-safe: meant
    for the GUI's thumbnail workers and the duplicate compare view.

    Args:
        path: The photo file.
        size: The box, in pixels, the image must fit in; the aspect ratio is kept.

    Raises:
        DecodeError: The file cannot be read or decoded; the message says why.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, not {size}")
    try:
        data, _info = read_regular(path)
    except (UnsafeFileError, FileTooLargeError) as exc:
        raise DecodeError(str(exc)) from exc
    except OSError as exc:
        raise DecodeError(f"cannot read the file ({exc.strerror or exc})") from exc
    image = _decode(data, name=path.name, min_side=size).image
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return image


def _decode(data: bytes, *, name: str, min_side: int) -> _Decoded:
    if not data:
        raise DecodeError("file is empty")
    declared = format_of(name)
    if is_raw_format(declared):
        return _decode_raw(data, fmt=declared, min_side=min_side)
    return _decode_pillow(data, declared=declared, min_side=min_side, name=name)


# --------------------------------------------------------------------------------------------- Pillow


_openers_lock = threading.Lock()
_openers_cache: dict[str, _Opener] = {}


def _openers() -> dict[str, _Opener]:
    """The header openers of the formats in :data:`_PIL_FORMATS`, loading their plugins on first use."""
    if _openers_cache:
        return _openers_cache
    with _openers_lock:
        if not _openers_cache:
            register_heif()
            # Importing a plugin registers it with Pillow, as Image.open would do lazily itself.
            from PIL import (
                AvifImagePlugin,  # noqa: F401 - imported for its registration
                BmpImagePlugin,  # noqa: F401
                GifImagePlugin,  # noqa: F401
                JpegImagePlugin,
                PngImagePlugin,  # noqa: F401
                TiffImagePlugin,  # noqa: F401
                WebPImagePlugin,  # noqa: F401
            )

            openers: dict[str, _Opener] = {}
            for format_id in _PIL_FORMATS:
                if format_id in Image.OPEN:
                    openers[format_id] = Image.OPEN[format_id]
            # The JPEG entry's factory also turns multi-picture JPEGs into MpoImageFile (and warns on a
            # damaged MP segment); the first picture is all photoembed shows, which the plain class reads.
            if "JPEG" in openers:
                openers["JPEG"] = (JpegImagePlugin.JpegImageFile, openers["JPEG"][1])
            _openers_cache.update(openers)
    return _openers_cache


_warnings_lock = threading.Lock()


@contextmanager
def _pillow_warnings_logged(name: str) -> Iterator[None]:
    """Turn the warnings Pillow emits on odd files ("Corrupt EXIF data", pixel-limit warnings) into logs.

    A damaged tag is data about the photo, not a condition for the user's terminal or for pytest's
    ``filterwarnings=error``. ``warnings.catch_warnings`` swaps process-wide state, so the sections that
    use it are serialised by a lock; they only cover header parsing and the rare very large image, so the
    decode pool still decodes in parallel.
    """
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        logger.debug("%s: %s", name, warning.message)


def _identify(fp: io.BytesIO, name: str) -> ImageFile.ImageFile:
    """Read the header with the first plugin that claims the data; nothing is decoded yet."""
    openers = _openers()
    prefix = fp.read(16)
    claimed_by: str | None = None
    refusal: str | None = None
    for format_id in _PIL_FORMATS:
        opener = openers.get(format_id)
        if opener is None:
            continue
        factory, accept = opener
        verdict = True if accept is None else accept(prefix)
        if isinstance(verdict, str):  # the format is recognised but this Pillow build cannot read it
            refusal = f"{format_id} images are not supported by this installation"
            continue
        if not verdict:
            continue
        claimed_by = claimed_by or format_id
        fp.seek(0)
        try:
            with _pillow_warnings_logged(name):
                return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error) as exc:
            # Image.open treats these as "not this format" and tries the next plugin; so do we.
            logger.debug("%s: %s header rejected: %s", name, format_id, exc)
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"image too large (limit {MAX_PIXELS // 1_000_000} MP)") from exc
        except _DECODER_ERRORS as exc:
            logger.debug("%s: %s header unreadable: %s", name, format_id, exc)
            raise DecodeError(f"damaged {_label(format_id)} file (unreadable header)") from exc
    if claimed_by is not None:
        raise DecodeError(f"damaged {_label(claimed_by)} file (unreadable header)")
    raise DecodeError(refusal or "not an image (unrecognised data)")


def _label(format_id: str | None) -> str:
    return {"HEIF": "HEIC/HEIF", "WEBP": "WebP"}.get(format_id or "", format_id or "image")


def _check_pixels(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise DecodeError(f"image too large: {width}x{height} px (limit {MAX_PIXELS // 1_000_000} MP)")


def _decode_pillow(data: bytes, *, declared: str, min_side: int, name: str, orient: bool = True) -> _Decoded:
    image = _identify(io.BytesIO(data), name)
    label = _label(image.format)
    try:
        width, height = image.size
        _check_pixels(width, height)
        if min_side > 0:
            # JPEG: DCT scaling to the smallest 1/1..1/8 scale that keeps both sides >= min_side.
            # HEIF: the smallest embedded thumbnail that does. Other formats ignore drafts.
            image.draft("RGB", (min_side, min_side))
        try:
            if image.format == "TIFF" or width * height > (Image.MAX_IMAGE_PIXELS or MAX_PIXELS):
                # Some plugins re-check Pillow's own pixel limit while loading (TIFF, GIF frames), and
                # the TIFF plugin parses the file's EXIF directories at the end of load (and may warn).
                with _pillow_warnings_logged(name):
                    image.load()
            else:
                image.load()
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"image too large: {width}x{height} px for the {label} decoder") from exc
        except _DECODER_ERRORS as exc:
            logger.debug("%s: decoding failed: %r", name, exc)
            raise DecodeError(_load_failure(label, exc)) from exc
        exif = read_exif(data if image.format == "TIFF" else _exif_block(image))
        orientation = exif.orientation if orient else 1
        if _pillow_oriented(image):
            orientation = 1  # already upright, and the header size was already the upright size
        rgb = _shrink(_to_rgb(image), min_side)
        if rgb is image:  # keep no reference to the file object or to the plugin's state
            rgb = image.copy()
    finally:
        image.close()
    width, height = oriented_size(width, height, orientation)
    return _Decoded(
        image=apply_orientation(rgb, orientation),
        format=_short_format(image.format, declared),
        width=width,
        height=height,
        exif=exif,
    )


def _pillow_oriented(image: Image.Image) -> bool:
    """Tell whether Pillow turned the image upright itself while loading it.

    Recent Pillow (13 here) does so for TIFF: it reports the upright size from the header, transposes the pixels in
    ``load`` and then deletes the Orientation tag. Older versions leave all three alone.
    """
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None:
        return False
    return _ORIENTATION_TAG not in tags


def _load_failure(label: str, exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "not enough memory to decode this image"
    if isinstance(exc, OSError) and "truncated" in str(exc):
        return f"truncated {label}"
    return f"damaged {label} image data"


def _exif_block(image: Image.Image) -> bytes | None:
    block = image.info.get("exif")
    return block if isinstance(block, bytes) else None


def _short_format(format_id: str | None, declared: str) -> str:
    if format_id == "HEIF":
        # pillow-heif says HEIF for both extensions; the name tells what the user calls it.
        return declared if declared in ("heic", "heif") else "heic"
    return _SHORT_FORMAT.get(format_id or "", (format_id or "unknown").lower())


def _shrink(image: Image.Image, min_side: int) -> Image.Image:
    """Box-reduce by the largest integer factor that keeps the shortest side >= min_side."""
    if min_side <= 0:
        return image
    factor = min(image.size) // min_side
    return image.reduce(factor) if factor >= 2 else image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white, high bit depths scaled."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    has_transparency = "transparency" in image.info and mode in ("P", "L", "RGB")
    if mode == "RGB" and not has_transparency:
        return image
    if mode in _ALPHA_MODES or has_transparency:
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float images to 8 bits (a plain convert would clip them to white)."""
    array = np.asarray(image)
    if image.mode == "F":
        finite = array[np.isfinite(array)]
        top = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        scaled = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0) * scale
    elif image.mode.startswith("I;16"):
        scaled = array.astype(np.float32) / 257.0
    else:  # "I": 32-bit; usually 8- or 16-bit data widened by the decoder
        top = int(array.max()) if array.size else 0
        if top <= 255:
            scaled = array.astype(np.float32)
        elif top <= 65535:
            scaled = array.astype(np.float32) / 257.0
        else:
            scaled = array.astype(np.float32) * (255.0 / top)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


# ---------------------------------------------------------------------------------------------- RAW


def _decode_raw(data: bytes, *, fmt: str, min_side: int) -> _Decoded:
    # LibRaw is a large native library; most libraries hold no RAW file, so it loads on first use.
    import rawpy

    try:
        raw = rawpy.imread(io.BytesIO(data))
    except _raw_errors() as exc:
        logger.debug("%s: LibRaw cannot open it: %r", fmt, exc)
        raise DecodeError(f"unsupported or damaged RAW file ({fmt[4:].upper()})") from exc
    with raw:
        sizes = raw.sizes
        orientation = orientation_from_libraw_flip(sizes.flip)
        width, height = oriented_size(sizes.width, sizes.height, orientation)
        _check_pixels(width, height)
        exif = read_exif(data)  # CR2, NEF, ARW, DNG, ORF, RW2, PEF and SRW are TIFF inside
        preview = _raw_preview(raw, min_side=min_side, orientation=orientation, oriented=(width, height))
        if preview is not None and choose_raw_preview(preview.image.size, min_side=min_side):
            image = preview.image
        else:
            try:
                pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            except _raw_errors() as exc:
                logger.debug("%s: LibRaw cannot demosaic it: %r", fmt, exc)
                if preview is None:
                    raise DecodeError("RAW file has no readable preview or image data") from exc
                image = preview.image  # smaller than asked for, but better than nothing
            else:
                image = _shrink(Image.fromarray(pixels).convert("RGB"), min_side)
        if exif.taken is None:
            exif = _raw_fallback_metadata(raw, exif, preview.exif if preview else NO_EXIF)
    return _Decoded(image=image, format=fmt, width=width, height=height, exif=exif)


def _raw_errors() -> tuple[type[BaseException], ...]:
    import rawpy

    return (rawpy.LibRawError, rawpy.NotSupportedError, *_DECODER_ERRORS)


class _Preview(NamedTuple):
    image: Image.Image
    exif: ExifSummary


def choose_raw_preview(preview_size: tuple[int, int] | None, *, min_side: int) -> bool:
    """Tell whether a RAW file's embedded preview is large enough to stand for the photo.

    Args:
        preview_size: The decoded preview's size, or None when the file has no usable preview.
        min_side: The shortest side the caller needs.

    Returns:
        True to use the preview; False to demosaic the RAW data (at half size) instead.
    """
    return preview_size is not None and min(preview_size) >= min_side > 0


def _raw_preview(raw: Any, *, min_side: int, orientation: int, oriented: tuple[int, int]) -> _Preview | None:
    """Decode the RAW file's embedded preview, upright, or None when it has none that decodes."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except _raw_errors() as exc:
        logger.debug("no embedded preview: %r", exc)
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            # Not oriented by its own EXIF: LibRaw hands previews out with the RAW's IFD0 as their EXIF,
            # whether the camera stored the preview in sensor orientation or upright.
            decoded = _decode_pillow(
                bytes(thumb.data), declared="jpeg", min_side=min_side, name="RAW preview", orient=False
            )
        except DecodeError as exc:
            logger.debug("embedded preview does not decode: %s", exc)
            return None
        image, exif = decoded.image, decoded.exif
    else:  # a bitmap: an RGB array, in sensor orientation
        image = _shrink(Image.fromarray(np.ascontiguousarray(thumb.data)).convert("RGB"), min_side)
        exif = NO_EXIF
    if orientation == 1:
        orientation = exif.orientation
    return _Preview(_orient_preview(image, orientation, oriented), exif)


def _orient_preview(image: Image.Image, orientation: int, oriented: tuple[int, int]) -> Image.Image:
    """Turn a RAW preview upright with the RAW's orientation, unless it already is.

    Previews are usually stored in sensor orientation, but some cameras store them upright. A quarter
    turn is only applied when the preview's aspect does not already match the photo's upright aspect.
    """
    if orientation == 1:
        return image
    if orientation in (5, 6, 7, 8):
        width, height = image.size
        upright_is_landscape = oriented[0] > oriented[1]
        if width != height and (width > height) == upright_is_landscape:
            return image
    return apply_orientation(image, orientation)


def _raw_fallback_metadata(raw: Any, exif: ExifSummary, preview_exif: ExifSummary) -> ExifSummary:
    """Capture time for RAW formats that are not TIFF inside (CR3, RAF): the preview's EXIF, else LibRaw."""
    taken, tag = preview_exif.taken, preview_exif.taken_tag
    if taken is None:
        try:
            stamp = raw.other.timestamp
        except _DECODER_ERRORS:
            stamp = None
        if stamp is not None and stamp.year >= 1970 and stamp.timestamp() > 0:
            taken, tag = stamp.timestamp(), "LibRaw"
    return ExifSummary(
        orientation=exif.orientation,
        taken=taken,
        taken_tag=tag,
        has_gps=exif.has_gps or preview_exif.has_gps,
    )
