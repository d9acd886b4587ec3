"""A photo's visual fingerprint: what the duplicate finder compares instead of re-reading files.

One call on the already decoded, EXIF-oriented small image (the ingest pipeline's decode threads) gives:

* a PDQ hash (256 bits, Facebook's perceptual hash) with its quality score. Measured on generated variants
  of ``photos-large``: resize, JPEG re-encode (q30-q90) and brightness -20 % stay within 8 bits, +20 %
  within 34, while unrelated photos are 110+ bits apart. PDQ's quality (0-100, from the image's gradient
  energy) is what flags near-uniform images (sky, black frames, blank pages: quality 0-4 on the shared
  data set), the classic perceptual-hash false positive. imagehash's 64-bit phash was measured too: 6x
  slower here (10 ms vs 1.6 ms for PDQ on a 400 px image) and with no quality signal.
* a 32x32 grey thumbnail (aspect squashed) and an 8x8 grey layout. No global hash survives a crop: PDQ puts
  a 10 % crop 62-138 bits away, like an unrelated photo. The thumbnail lets the duplicate finder test
  "is one photo a crop/rescale of the other" by aligning the two (see photoembed.dedup.match); the 8x8
  layout is the cheap vector that finds the candidates to test.
* sharpness: variance of the Laplacian of the grey image at a fixed scale (for keeper rules).

Format 2 (this version) adds, after the thumbnail, what the same-photo check needs so that no pair ever
re-reads or re-filters a photo:

* the *content box*: uniform borders, UI bars and frames trimmed (photoembed.imaging.frame). PDQ, the layout
  and the thumbnail above describe the content box only, so a padded square or a screenshot of a photo
  hashes like the photo, and two different photos in the same frame share nothing.
* low-contrast photos (a misty scene: PDQ quality 30) are hashed after a contrast stretch instead of being
  dropped; the quality byte's high bit (:data:`NORMALISED_FLAG`) says so, and the duplicate finder then
  trusts no hash alone for them (it asks the local features).
* up to :data:`MAX_KEYPOINTS` ORB keypoints of the content (positions and 32-byte descriptors), detected
  on a CLAHE-equalised grey image of :data:`FEATURE_SIDE` px: what the geometric check matches.

Format 1 blobs still parse (without features). Byte 0 of a blob is its format version, and the catalog
keeps it per photo (``photos.fingerprint_version``): the indexer and ``dupes`` fingerprint every photo of an
older version again (photoembed.core.indexer), so bump :data:`FORMAT_VERSION` whenever what is computed
changes, even with the same byte layout. Thread-safe: no shared state. About 6-9 ms on a 400 px
image, most of it ORB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pdqhash
from PIL import Image

from photoembed.imaging.frame import content_box

FORMAT_VERSION = 2
_READABLE = (1, 2)
THUMB_SIDE = 32
LAYOUT_SIDE = 8

# Byte layout of Fingerprint.phash (version 1). Keep offsets stable: the catalog stores these bytes.
QUALITY_OFFSET = 1
PDQ_OFFSET = 2
PDQ_BYTES = 32
LAYOUT_OFFSET = PDQ_OFFSET + PDQ_BYTES
LAYOUT_BYTES = LAYOUT_SIDE * LAYOUT_SIDE
THUMB_OFFSET = LAYOUT_OFFSET + LAYOUT_BYTES
THUMB_BYTES = THUMB_SIDE * THUMB_SIDE
#: Bytes the duplicate finder loads for every photo (thumbnails are fetched only for candidate pairs).
HEAD_BYTES = THUMB_OFFSET
FINGERPRINT_BYTES = THUMB_OFFSET + THUMB_BYTES
#: Format 2 tail: content box (4 x uint16, 1/65535 units), contrast (uint8), feature image size (2 x uint16),
#: keypoint count (uint16), then per keypoint x, y (uint16, 1/8 px of the feature image) and a 32-byte ORB
#: descriptor.
_TAIL_FIXED = 8 + 1 + 4 + 2
NORMALISED_FLAG = 0x80
#: Low-contrast photos: a photo whose hash quality is below this is re-hashed after a contrast stretch.
LOW_QUALITY = 50
#: ... when its grey range (1st-99th percentile) is at least this many levels: below, it is a flat image.
MIN_CONTRAST = 12
#: ... and its stretched hash is used only when that one has at least this quality.
STRETCHED_QUALITY = 80
MAX_KEYPOINTS = 400
FEATURE_SIDE = 480
#: The content box is used when it trims at least this share of an axis (a pad, a frame, a screenshot's
#: bars); a photo whose flat edge is only a little uniform keeps its whole image, so that its copies at
#: other sizes (box edges rounded differently) keep PDQ distances of a few bits.
MIN_TRIM = 0.15
_GRID = 4
_STRETCH_BELOW = 64

# Sharpness is measured on a grey image of this longest side, so that photos decoded at different sizes
# compare on the same scale.
_SHARPNESS_SIDE = 256


@dataclass(frozen=True)
class Fingerprint:
    """What the catalog stores per photo: ``phash`` (the blob above) and ``sharpness``."""

    phash: bytes
    sharpness: float


@dataclass(frozen=True)
class ParsedFingerprint:
    """The parts of a stored fingerprint blob."""

    quality: int
    pdq: bytes
    layout: np.ndarray  # uint8 [8, 8]
    thumb: np.ndarray | None  # uint8 [32, 32]; None when only the head was loaded
    #: Hash of a contrast-stretched image (a low-contrast photo): no hash test alone may confirm it.
    normalised: bool = False
    features: LocalFeatures | None = None  # format 2 with the whole blob loaded


@dataclass(frozen=True)
class LocalFeatures:
    """ORB keypoints of a photo's content box.

    Attributes:
        box: the content box in fractions of the decoded image (top, bottom, left, right).
        size: (width, height) of the feature image (the content box scaled to FEATURE_SIDE on its long side).
        points: float32 [k, 2] keypoint positions (x, y) in feature-image pixels.
        descriptors: uint8 [k, 32] ORB descriptors.
        contrast: grey range of the content (1st-99th percentile).
    """

    box: tuple[float, float, float, float]
    size: tuple[int, int]
    points: np.ndarray
    descriptors: np.ndarray
    contrast: int


def fingerprint(image: Image.Image) -> Fingerprint:
    """Fingerprint an RGB image (already EXIF-oriented). Thread-safe."""
    # The grey image is made once and every consumer reads it (the content box, the contrast, the thumbnail,
    # ORB and sharpness), and the percentiles come from a histogram: this function's output is frozen by
    # the catalog (tests/imaging/test_fingerprint_exact.py holds it to the first format-2 code, byte for byte).
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    grey_full = rgb.convert("L")
    g = np.asarray(grey_full)
    top, bottom, left, right = content_box(g)
    h, w = g.shape
    if (bottom - top) > (1 - MIN_TRIM) * h and (right - left) > (1 - MIN_TRIM) * w:
        top, bottom, left, right = 0, h, 0, w  # a plain photo with a flat edge: its hash stays exact
        grey, content = grey_full, g
    else:
        rgb = rgb.crop((left, top, right, bottom))
        grey = grey_full.crop((left, top, right, bottom))  # grey is per pixel: the crop of the grey image
        content = np.asarray(grey)
    lo, hi = _percentiles(content) if content.size else (np.float64(0.0), np.float64(0.0))
    contrast = max(0, min(255, round(float(hi - lo))))
    bits, quality = pdqhash.compute(np.asarray(rgb))
    quality_byte = max(0, min(100, int(quality)))
    if quality_byte < LOW_QUALITY and contrast >= MIN_CONTRAST:
        stretched = _stretch(content, lo, hi)
        s_bits, s_quality = pdqhash.compute(np.repeat(stretched[..., None], 3, 2))
        if s_quality >= STRETCHED_QUALITY:  # a smooth gradient (a clear sky) stays low: nothing to hash
            bits = s_bits
            quality_byte = max(0, min(100, int(s_quality))) | NORMALISED_FLAG
    pdq = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    thumb = grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    layout = thumb.resize((LAYOUT_SIDE, LAYOUT_SIDE), Image.Resampling.BOX)
    box = tuple(round(v * 65535) for v in (top / h, bottom / h, left / w, right / w))
    size, points, descriptors = _orb(content)
    tail = (
        np.array(box, dtype="<u2").tobytes()
        + bytes([contrast])
        + np.array([size[0], size[1], len(points)], dtype="<u2").tobytes()
        + np.round(points * 8).clip(0, 65535).astype("<u2").tobytes()
        + descriptors.tobytes()
    )
    blob = bytes([FORMAT_VERSION, quality_byte]) + pdq + layout.tobytes() + thumb.tobytes() + tail
    return Fingerprint(phash=blob, sharpness=_sharpness(grey_full))


def _percentiles(grey: np.ndarray) -> tuple[np.float64, np.float64]:
    """``np.percentile(grey, (1, 99))`` of a non-empty uint8 image, to the bit, from its histogram.

    NumPy's default ("linear") method: the order statistics either side of ``(n - 1) * q`` in the sorted
    values, interpolated as ``numpy.lib._function_base_impl._lerp`` does. Partitioning the pixels took 1.9 ms
    of a 26 ms fingerprint; counting them takes a tenth of that.
    """
    if grey.size < _EXACT_FLOAT32:
        hist = opencv().calcHist([np.ascontiguousarray(grey)], [0], None, [256], [0, 256]).ravel()
    else:  # OpenCV's counts are float32: a level this common may round, so count them exactly (slower)
        hist = np.bincount(grey.ravel(), minlength=256)
    cum = np.cumsum(hist.astype(np.int64))
    n = int(cum[-1])
    out = []
    for q in (1 / 100, 99 / 100):
        virtual = (n - 1) * q
        below = math.floor(virtual)
        if virtual >= n - 1:
            below = above = n - 1
        else:
            above = below + 1
        a = int(np.searchsorted(cum, below, side="right"))  # the value at sorted index `below`
        b = int(np.searchsorted(cum, above, side="right"))
        t = virtual - below
        diff = b - a
        out.append(np.float64(b - diff * (1 - t) if t >= 0.5 else a + diff * t))
    return out[0], out[1]


#: Integers below this are exact in float32 (OpenCV's histogram counts).
_EXACT_FLOAT32 = 1 << 24


def _stretch(grey: np.ndarray, lo: np.float64, hi: np.float64) -> np.ndarray:
    """The uint8 contrast stretch of ``grey`` from ``lo``-``hi`` to 0-255 (a table: one value per grey level)."""
    levels = np.arange(256, dtype=np.uint8)
    table = np.clip((levels.astype(np.float32) - lo) * (255.0 / max(1.0, float(hi - lo))), 0, 255).astype(np.uint8)
    return table[grey]


def opencv() -> Any:
    """OpenCV, imported on first use, with its own thread pool off.

    Callers already run one photo or pair per thread (the decode threads, the duplicate finder's one
    thread); OpenCV's pool on top only contends for the cores: ORB took 82 ms a photo with it and 37 ms
    without on the shared two cores under load.
    """
    global _OPENCV
    if _OPENCV is None:
        import cv2

        cv2.setNumThreads(1)
        _OPENCV = cv2
    return _OPENCV


_OPENCV: Any = None


def _orb(grey: np.ndarray) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """ORB keypoints of a grey image scaled to FEATURE_SIDE (long side), contrast-normalised.

    Keypoints are chosen per cell of a :data:`_GRID` x :data:`_GRID` grid (the strongest of each), so that a
    caption or a watermark, whose letters are the strongest corners of a photo, cannot take all of them.
    """
    cv2 = opencv()
    h, w = grey.shape
    empty = (np.zeros((0, 2), dtype=np.float32), np.zeros((0, 32), dtype=np.uint8))
    if h < 16 or w < 16:
        return (w, h), *empty
    scale = FEATURE_SIDE / max(h, w)
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(np.ascontiguousarray(grey), size, interpolation=interp)
    lo, hi = _percentiles(image)
    if hi - lo < _STRETCH_BELOW:  # a low-contrast (misty) photo: stretch first, or FAST finds few corners
        image = _stretch(image, lo, hi)
    image = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(image)
    orb = cv2.ORB_create(
        nfeatures=MAX_KEYPOINTS * 5, scaleFactor=1.2, nlevels=6, edgeThreshold=19, patchSize=19, fastThreshold=7
    )
    keypoints = orb.detect(image, None)
    if not keypoints:
        return size, *empty
    pts = cv2.KeyPoint_convert(keypoints).reshape(-1, 2)
    response = np.array([k.response for k in keypoints], dtype=np.float32)
    # One keypoint per 4 px spot (the strongest): a letter's corner found at every pyramid level would
    # otherwise give RANSAC a pile of coincident points to fit a degenerate transform on.
    spot = (pts[:, 1] // 4).astype(np.int64) * 4096 + (pts[:, 0] // 4).astype(np.int64)
    by_spot = np.lexsort((-response, spot))
    keep = np.ones(len(by_spot), dtype=bool)
    keep[1:] = spot[by_spot][1:] != spot[by_spot][:-1]
    kept = by_spot[keep]
    keypoints = [keypoints[int(k)] for k in kept]
    pts, response = pts[kept], response[kept]
    cell = np.minimum(pts[:, 1] * _GRID // size[1], _GRID - 1) * _GRID + np.minimum(
        pts[:, 0] * _GRID // size[0], _GRID - 1
    )
    order = np.lexsort((-response, cell))
    first = np.searchsorted(cell[order], cell[order], side="left")
    rank = np.arange(len(order)) - first
    per_cell = MAX_KEYPOINTS // (_GRID * _GRID)
    chosen = order[rank < per_cell]
    if len(chosen) < MAX_KEYPOINTS:  # cells with few corners leave room: fill with the strongest others
        rest = order[rank >= per_cell]
        rest = rest[np.argsort(-response[rest], kind="stable")][: MAX_KEYPOINTS - len(chosen)]
        chosen = np.concatenate([chosen, rest])
    keypoints, descriptors = orb.compute(image, [keypoints[int(k)] for k in chosen])
    if descriptors is None or not keypoints:
        return size, *empty
    points = cv2.KeyPoint_convert(keypoints).reshape(-1, 2)
    return size, points, np.ascontiguousarray(descriptors, dtype=np.uint8)


def parse(blob: bytes) -> ParsedFingerprint | None:
    """Split a stored blob; None for blobs of another format (written by another version)."""
    if len(blob) < HEAD_BYTES or blob[0] not in _READABLE:
        return None
    layout = np.frombuffer(blob, dtype=np.uint8, count=LAYOUT_BYTES, offset=LAYOUT_OFFSET)
    thumb = None
    if len(blob) >= FINGERPRINT_BYTES:
        thumb = np.frombuffer(blob, dtype=np.uint8, count=THUMB_BYTES, offset=THUMB_OFFSET)
        thumb = thumb.reshape(THUMB_SIDE, THUMB_SIDE)
    features = None
    if blob[0] >= 2 and len(blob) >= FINGERPRINT_BYTES + _TAIL_FIXED:
        features = _parse_tail(blob, FINGERPRINT_BYTES)
    return ParsedFingerprint(
        quality=blob[QUALITY_OFFSET] & ~NORMALISED_FLAG & 0xFF,
        pdq=bytes(blob[PDQ_OFFSET : PDQ_OFFSET + PDQ_BYTES]),
        layout=layout.reshape(LAYOUT_SIDE, LAYOUT_SIDE),
        thumb=thumb,
        normalised=bool(blob[QUALITY_OFFSET] & NORMALISED_FLAG),
        features=features,
    )


def _parse_tail(blob: bytes, offset: int) -> LocalFeatures | None:
    box = np.frombuffer(blob, dtype="<u2", count=4, offset=offset).astype(np.float64) / 65535.0
    contrast = blob[offset + 8]
    width, height, count = (int(v) for v in np.frombuffer(blob, dtype="<u2", count=3, offset=offset + 9))
    start = offset + _TAIL_FIXED
    if len(blob) < start + count * (4 + 32):
        return None
    points = np.frombuffer(blob, dtype="<u2", count=2 * count, offset=start).astype(np.float32).reshape(count, 2) / 8
    descriptors = np.frombuffer(blob, dtype=np.uint8, count=32 * count, offset=start + 4 * count).reshape(count, 32)
    return LocalFeatures(
        box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        size=(width, height),
        points=points,
        descriptors=descriptors,
        contrast=contrast,
    )


def _sharpness(grey: Image.Image) -> float:
    scale = _SHARPNESS_SIDE / max(grey.size)
    if scale < 1.0:
        size = (max(3, round(grey.width * scale)), max(3, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())
