"""Decode photo files into upright RGB images, fast, and refuse bad ones with a reason a user can read.

This is the ingest hot path, so each format takes its cheapest road to an image that still holds at least
:data:`OVERSAMPLE` times the pixels the model's input needs, so that the final resize (open_clip's
bicubic, antialiased one, done by :mod:`photoembed.ml.preprocess`) sees what it would see on a full decode:

- JPEG: DCT scaling (``Image.draft``) decodes at 1/2, 1/4 or 1/8 of the size for a fraction of the cost.
- HEIC/HEIF: the embedded thumbnail when it is large enough (pillow-heif's ``draft``), else the full image.
- Camera RAW: the embedded JPEG preview when it is large enough, else LibRaw's half-size demosaic.
- Other formats are decoded in full and kept at full size (a box reduce before the bicubic resize drifts
  from open_clip's output; the resize only computes the pixels of its crop box, so this costs little).

Each decode reports where the original, upright photo lies in the decoded image's pixel coordinates
(:attr:`DecodedPhoto.extent`), so the resize geometry (target size, centre crop) is computed from the
original width and height, not from the rounded size of a reduced decode.

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
import math
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
from photoembed.imaging.jpegtrace import jpeg_tables, jpeg_trace
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

#: Largest ratio of the long side to the short side decoded. Stitched panoramas reach about 20:1; a 100000x1
#: strip is not a photo, and resizing its short side to the model's input would need gigabytes.
MAX_ASPECT = 100

#: The decoded image keeps at least this many times the model's input size on each axis (or the full size
#: when the photo is smaller), so the final resize filters as it would from the full image.
OVERSAMPLE = 2

# A Huffman-coded JPEG spends at least one bit per 8x8 luma block on its DC coefficients (baseline and
# progressive alike). A file much smaller than that cannot hold the image its header declares: libjpeg
# would fill the missing blocks with grey and only warn, so the size is checked before decoding.
_JPEG_MIN_BITS_PER_BLOCK = 1
_ARITHMETIC_SOF = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})

_WHITE = (255, 255, 255)
_ORIENTATION_TAG = 0x0112

# Pillow formats photoembed decodes, in the order they are tried. HEIF goes before AVIF because both claim
# the generic "mif1" brand and only the HEIF opener tells HEVC from AV1 content cleanly. Formats outside this
# list are refused on purpose: a file named .jpg is never handed to, say, the EPS plugin and Ghostscript.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF", "BMP", "GIF")
# Lossless formats whose pixels may be a decoded JPEG (keeper rules ask; see photoembed.imaging.jpegtrace).
_LOSSLESS_PIL_FORMATS = frozenset({"PNG", "TIFF", "BMP"})
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

#: Where the original, upright photo lies in a decoded image: (left, top, right, bottom), in its pixels.
Extent = tuple[float, float, float, float]

_Opener = tuple[Callable[[IO[bytes], str], ImageFile.ImageFile], Callable[[bytes], bool | str] | None]


class DecodeError(KnownError):
    """A photo could not be decoded; the message is the short reason shown to the user."""


@dataclass(frozen=True)
class DecodedPhoto:
    """A decoded photo, ready for embedding.

    Attributes:
        image: RGB image, EXIF orientation applied. Each side is at least :data:`OVERSAMPLE` times what a
            resize of the original to cover the requested size needs, whenever the original is that large
            (JPEG DCT scaling and embedded previews give a reduced image; other formats stay full size).
        info: Format, original (oriented) size, capture time and GPS presence. ``phash`` and
            ``sharpness`` are left None for the fingerprint step.
        extent: where the original upright photo (``info.width`` x ``info.height``) lies in ``image``'s
            pixel coordinates: ``(0, 0, *image.size)`` for a full decode, ``(0, 0, W/k, H/k)`` for a
            1/k JPEG decode (whose size is rounded up), shifted when a flip puts the rounding on the left.
    """

    image: Image.Image
    info: PhotoInfo
    extent: Extent | None = None

    @property
    def geometry(self) -> dict[str, Any]:
        """Keyword arguments for ``Preprocess`` / ``ClipEncoder.prepare``: the original size and extent."""
        return {"original_size": (self.info.width, self.info.height), "extent": self.extent}


class _Decoded(NamedTuple):
    image: Image.Image
    format: str
    width: int
    height: int
    exif: ExifSummary
    extent: Extent
    jpeg_trace: float | None = None  # measured on lossless formats only (see photoembed.imaging.jpegtrace)
    jpeg_tables: int | None = None  # JPEGs: libjpeg quality of standard tables, 0 for the encoder's own


def decode_photo(data: bytes, *, name: str, min_side: int | tuple[int, int], mtime: float) -> DecodedPhoto:
    """Decode a photo file's bytes into an upright RGB image and its metadata.

    Thread-safe: called from the ingest decode pool.

    Args:
        data: The whole file.
        name: The file name; its extension routes RAW files to LibRaw and names HEIF files 'heic' or
            'heif'. Other formats are recognised by content, so a PNG named .jpg decodes as a PNG.
        min_side: The model's input size, ``S`` or ``(height, width)``. The decode keeps
            :data:`OVERSAMPLE` times what resizing the original to cover it needs; 0 decodes at full size.
        mtime: The file's modification time (unix seconds), the capture time when EXIF has none.

    Returns:
        The image and its :class:`PhotoInfo`.

    Raises:
        DecodeError: The file is empty, not an image, damaged, truncated, too large, or of an extreme
            aspect ratio.
    """
    target = _target(min_side)
    decoded = _decode(data, name=name, target=target, oversample=OVERSAMPLE, trace=True)
    exif = decoded.exif
    info = PhotoInfo(
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        taken=exif.taken if exif.taken is not None else mtime,
        taken_from_exif=exif.taken is not None,
        has_gps=exif.has_gps,
        camera=exif.camera,
        software=exif.software,
        modified=exif.modified,
        jpeg_trace=decoded.jpeg_trace,
        jpeg_tables=decoded.jpeg_tables,
    )
    return DecodedPhoto(image=decoded.image, info=info, extent=decoded.extent)


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
    image = _decode(data, name=path.name, target=(size, size), oversample=1).image
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return image


def _target(min_side: int | tuple[int, int]) -> tuple[int, int]:
    """``S`` or ``(height, width)`` -> ``(height, width)``; (0, 0) for a full decode."""
    pair = (min_side, min_side) if isinstance(min_side, int) else (int(min_side[0]), int(min_side[-1]))
    if pair[0] < 0 or pair[1] < 0:
        raise ValueError(f"min_side must be >= 0, not {min_side}")
    return (0, 0) if 0 in pair else pair


def needed_size(width: int, height: int, target: tuple[int, int], oversample: int = OVERSAMPLE) -> tuple[int, int]:
    """The smallest decode of a ``width`` x ``height`` (upright) photo that serves ``target`` (height, width).

    Whatever open_clip's resize mode (shortest side + crop, longest side + pad, squash), the resized image
    is at most ``max(th / height, tw / width)`` times the original on each axis; the decode keeps
    ``oversample`` times that, and never more than the original.
    """
    if target[0] <= 0 or target[1] <= 0:
        return width, height
    scale = min(1.0, oversample * max(target[0] / height, target[1] / width))
    return min(width, math.ceil(width * scale)), min(height, math.ceil(height * scale))


def _decode(
    data: bytes, *, name: str, target: tuple[int, int], oversample: int, trace: bool = False
) -> _Decoded:
    if not data:
        raise DecodeError("file is empty")
    declared = format_of(name)
    if is_raw_format(declared):
        return _decode_raw(data, fmt=declared, target=target, oversample=oversample)
    return _decode_pillow(data, declared=declared, target=target, oversample=oversample, name=name, trace=trace)


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
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise DecodeError(f"extreme aspect ratio: {width}x{height} px (limit {MAX_ASPECT}:1)")


def _check_jpeg_payload(data: bytes, width: int, height: int) -> None:
    """Refuse a JPEG too small to hold the pixels its header declares (see ``_JPEG_MIN_BITS_PER_BLOCK``)."""
    if _jpeg_sof_marker(data) in _ARITHMETIC_SOF:
        return  # arithmetic coding has no per-block minimum
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    needed = blocks * _JPEG_MIN_BITS_PER_BLOCK // 8
    if len(data) < needed:
        raise DecodeError(
            f"truncated JPEG: {len(data)} bytes cannot hold the {width}x{height} px its header declares"
        )


def _jpeg_sof_marker(data: bytes) -> int | None:
    """The start-of-frame marker (0xC0..0xCF) of a JPEG, walking its segments; None when not found."""
    position = 2
    end = len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def _decode_pillow(
    data: bytes,
    *,
    declared: str,
    target: tuple[int, int],
    oversample: int,
    name: str,
    orient: bool = True,
    min_scale: float | None = None,
    trace: bool = False,
) -> _Decoded:
    """Decode with Pillow; ``min_scale`` (a fraction of each side to keep) overrides ``target``."""
    image = _identify(io.BytesIO(data), name)
    label = _label(image.format)
    try:
        width, height = image.size
        _check_pixels(width, height)
        tables = None
        if image.format == "JPEG":
            _check_jpeg_payload(data, width, height)
            tables = jpeg_tables(getattr(image, "quantization", None))
        exif = read_exif(data if image.format == "TIFF" else _exif_block(image))
        orientation = exif.orientation if orient else 1
        upright = oriented_size(width, height, orientation)
        if min_scale is not None:
            keep = min(1.0, min_scale)
            need = (min(width, math.ceil(width * keep)), min(height, math.ceil(height * keep)))
        else:
            need = oriented_size(*needed_size(*upright, target, oversample), orientation)  # stored orientation
        if need != (width, height) and image.format in ("JPEG", "HEIF"):
            # JPEG: DCT scaling to the smallest 1/1..1/8 scale that keeps both sides >= need.
            # HEIF: the smallest embedded thumbnail (a scaled copy) that does.
            image.draft("RGB", need)
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
        if _pillow_oriented(image):
            # Pillow turned it upright while loading (TIFF), and its header size was the upright size.
            orientation, upright = 1, (width, height)
        extent = _stored_extent(image, (width, height))
        rgb = _to_rgb(image)
        traces = jpeg_trace(rgb) if trace and image.format in _LOSSLESS_PIL_FORMATS else None
        if rgb is image:  # keep no reference to the file object or to the plugin's state
            rgb = image.copy()
    finally:
        image.close()
    return _Decoded(
        image=apply_orientation(rgb, orientation),
        format=_short_format(image.format, declared),
        width=upright[0],
        height=upright[1],
        exif=exif,
        extent=orient_extent(extent, rgb.size, orientation),
        jpeg_trace=traces,
        jpeg_tables=tables,
    )


def _stored_extent(image: ImageFile.ImageFile, original: tuple[int, int]) -> Extent:
    """Where the original lies in a loaded (possibly reduced) image, before orientation."""
    if image.size == original:
        return (0.0, 0.0, float(original[0]), float(original[1]))
    config = getattr(image, "decoderconfig", None)
    if image.format == "JPEG" and config and int(config[0]) > 1:
        scale = int(config[0])  # DCT scaling: pixel i covers original pixels [i*k, (i+1)*k)
        return (0.0, 0.0, original[0] / scale, original[1] / scale)
    return (0.0, 0.0, float(image.size[0]), float(image.size[1]))  # a scaled copy (HEIF thumbnail)


def orient_extent(extent: Extent, size: tuple[int, int], orientation: int) -> Extent:
    """Carry an extent through the EXIF transposition of an image of ``size`` (stored orientation)."""
    if orientation not in _EXTENT_MAPS:
        return extent
    width, height = size
    mapping = _EXTENT_MAPS[orientation]
    left, top, right, bottom = extent
    xs, ys = zip(*(mapping(x, y, width, height) for x, y in ((left, top), (right, bottom))), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


# Point maps (continuous pixel coordinates) of Pillow's transpositions, keyed by EXIF orientation.
_EXTENT_MAPS: dict[int, Callable[[float, float, int, int], tuple[float, float]]] = {
    2: lambda x, y, w, h: (w - x, y),  # FLIP_LEFT_RIGHT
    3: lambda x, y, w, h: (w - x, h - y),  # ROTATE_180
    4: lambda x, y, w, h: (x, h - y),  # FLIP_TOP_BOTTOM
    5: lambda x, y, w, h: (y, x),  # TRANSPOSE
    6: lambda x, y, w, h: (h - y, x),  # ROTATE_270 (clockwise)
    7: lambda x, y, w, h: (h - y, w - x),  # TRANSVERSE
    8: lambda x, y, w, h: (y, w - x),  # ROTATE_90 (counter-clockwise)
}


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


def _shrink(image: Image.Image, need: tuple[int, int]) -> tuple[Image.Image, int]:
    """Box-reduce by the largest integer factor that keeps both sides >= need; (image, factor)."""
    factor = min(image.size[0] // max(need[0], 1), image.size[1] // max(need[1], 1))
    return (image.reduce(factor), factor) if factor >= 2 else (image, 1)


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


def _decode_raw(data: bytes, *, fmt: str, target: tuple[int, int], oversample: int) -> _Decoded:
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
        need = needed_size(width, height, target, oversample)
        exif = read_exif(data)  # CR2, NEF, ARW, DNG, ORF, RW2, PEF and SRW are TIFF inside
        preview = _raw_preview(raw, need=need, orientation=orientation, oriented=(width, height))
        if preview is not None and choose_raw_preview(preview.image.size, need=need):
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
                # Upright already (LibRaw applies the flip); reduced by an integer factor, as RAW is rare.
                image = _shrink(Image.fromarray(pixels).convert("RGB"), need)[0]
        if exif.taken is None:
            exif = _raw_fallback_metadata(raw, exif, preview.exif if preview else NO_EXIF)
    # LibRaw's output is upright; a preview is taken as a scaled copy of the whole photo.
    extent = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
    return _Decoded(image=image, format=fmt, width=width, height=height, exif=exif, extent=extent)


def _raw_errors() -> tuple[type[BaseException], ...]:
    import rawpy

    return (rawpy.LibRawError, rawpy.NotSupportedError, *_DECODER_ERRORS)


class _Preview(NamedTuple):
    image: Image.Image
    exif: ExifSummary


def choose_raw_preview(preview_size: tuple[int, int] | None, *, need: tuple[int, int]) -> bool:
    """Tell whether a RAW file's embedded preview is large enough to stand for the photo.

    Args:
        preview_size: The decoded (upright) preview's size, or None when the file has no usable preview.
        need: The upright size the decode must keep (:func:`needed_size`: twice the model's need).

    Returns:
        True to use the preview; False to demosaic the RAW data (at half size) instead.
    """
    if preview_size is None:
        return False
    # Compare the short and long sides, so a preview stored in sensor orientation is judged fairly.
    return min(preview_size) >= min(need) and max(preview_size) >= max(need)


def _raw_preview(
    raw: Any, *, need: tuple[int, int], orientation: int, oriented: tuple[int, int]
) -> _Preview | None:
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
            # Decoded at the size needed relative to the preview itself (previews are scaled copies).
            decoded = _decode_pillow(
                bytes(thumb.data),
                declared="jpeg",
                target=(0, 0),
                oversample=1,
                name="RAW preview",
                orient=False,
                min_scale=max(need[0] / oriented[0], need[1] / oriented[1]),
            )
        except DecodeError as exc:
            logger.debug("embedded preview does not decode: %s", exc)
            return None
        image, exif = decoded.image, decoded.exif
    else:  # a bitmap: an RGB array, in sensor orientation
        image = Image.fromarray(np.ascontiguousarray(thumb.data)).convert("RGB")
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
        camera=exif.camera or preview_exif.camera,
        software=exif.software or preview_exif.software,
        modified=exif.modified or preview_exif.modified,
    )
