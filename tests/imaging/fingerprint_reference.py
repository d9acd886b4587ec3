"""A frozen copy of the format-2 fingerprint code as first written (photoembed 35f3d63), for tests only.

The catalog keeps fingerprints without recomputing them, so any faster version of
:func:`photoembed.imaging.fingerprint.fingerprint` must give these bytes and this sharpness exactly, for
every image: tests/imaging/test_fingerprint_exact.py compares the two. Do not edit (other than for lint);
a change of what is computed is a new :data:`~photoembed.imaging.fingerprint.FORMAT_VERSION`, with its own
reference.
"""

from __future__ import annotations

import numpy as np
import pdqhash
from PIL import Image

from photoembed.imaging.fingerprint import Fingerprint, opencv

# photoembed.imaging.fingerprint's constants at 35f3d63.
FORMAT_VERSION = 2
THUMB_SIDE = 32
LAYOUT_SIDE = 8
NORMALISED_FLAG = 0x80
LOW_QUALITY = 50
MIN_CONTRAST = 12
STRETCHED_QUALITY = 80
MAX_KEYPOINTS = 400
FEATURE_SIDE = 480
MIN_TRIM = 0.15
_GRID = 4
_STRETCH_BELOW = 64
_SHARPNESS_SIDE = 256

# photoembed.imaging.frame at 35f3d63.
UNIFORM_STD = 2.0
#: A pad meets the photo with an edge: the next lines vary this much, or their mean steps this far.
SHARP_STD = 8.0
SHARP_STEP = 8.0
#: Neighbouring flat lines of one pad differ by less than this in mean.
SAME_COLOUR = 3.0
WORK_SIDE = 128
BAR_MAX = 0.15
#: Bars are looked for only this close to each edge (a document's text lines are not bars).
BAR_ZONE = 0.25
GAP_MIN = 2
KEEP_MIN = 0.25
LINE_MARGIN = 0.15


def _content_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` pixel bounds (bottom/right exclusive) of the content of a grey image.

    Judged on a copy of :data:`WORK_SIDE` px (long side, area-averaged), so that one photo decoded at two
    sizes (grain averaged differently) gets the same box.
    """
    full = np.asarray(grey, dtype=np.float32)
    fh, fw = full.shape
    if fh < 8 or fw < 8:
        return 0, fh, 0, fw
    scale = min(1.0, WORK_SIDE / max(fh, fw))
    if scale < 1.0:
        size = (max(8, round(fw * scale)), max(8, round(fh * scale)))
        small = np.asarray(Image.fromarray(full.astype(np.uint8)).resize(size, Image.Resampling.BOX), np.float32)
    else:
        small = full
    top, bottom, left, right = _box(small)
    sh, sw = small.shape
    return round(top * fh / sh), round(bottom * fh / sh), round(left * fw / sw), round(right * fw / sw)


def _box(g: np.ndarray) -> tuple[int, int, int, int]:
    h, w = g.shape
    top, bottom, left, right = 0, h, 0, w
    for _ in range(3):  # each side's cut changes the others' lines (a bar spans the trimmed width only)
        before = (top, bottom, left, right)
        region = g[top:bottom, left:right]
        # Uniformity is judged on the middle of each line: the frame's other sides cross every line of a mat.
        rh, rw = region.shape
        my, mx = int(rh * LINE_MARGIN), int(rw * LINE_MARGIN)
        rows = region[:, mx : rw - mx]
        cols = region[my : rh - my, :]
        row_std, row_mean = rows.std(axis=1), rows.mean(axis=1)
        col_std, col_mean = cols.std(axis=0), cols.mean(axis=0)
        t = _cut(row_std, row_mean, h)
        b = _cut(row_std[::-1], row_mean[::-1], h)
        lft = _cut(col_std, col_mean, w)
        r = _cut(col_std[::-1], col_mean[::-1], w)
        if (bottom - top) - t - b < KEEP_MIN * h:
            t = b = 0
        if (right - left) - lft - r < KEEP_MIN * w:
            lft = r = 0
        top, bottom, left, right = top + t, bottom - b, left + lft, right - r
        if (top, bottom, left, right) == before:
            break
    return top, bottom, left, right


def _cut(std: np.ndarray, mean: np.ndarray, side: int) -> int:
    """Lines to cut from the start (each line's standard deviation and mean, from the edge inwards)."""
    uniform = std <= UNIFORM_STD
    n = len(uniform)
    bar_max = max(1, int(BAR_MAX * side))
    zone = int(BAR_ZONE * side)
    pos = _flat_run(std, mean, 0)
    if 0 < pos < n and not _sharp(std, mean, pos):
        return 0  # a flat run fading into the picture is the picture (a misty sky), not a pad
    while pos < zone:
        # The bar runs to the next gap of GAP_MIN uniform lines (single uniform lines inside a bar, between
        # a status bar and a toolbar, belong to it).
        gap_start = pos
        while True:
            bar_end = _run(uniform, gap_start, False)
            gap_end = _flat_run(std, mean, bar_end)
            if gap_end - bar_end >= GAP_MIN or gap_end >= n:
                break
            gap_start = gap_end
        if bar_end - pos > bar_max or gap_end >= n or gap_end - bar_end < GAP_MIN:
            break
        if not _sharp(std, mean, gap_end):
            break
        pos = gap_end
    return min(pos, n)


def _flat_run(std: np.ndarray, mean: np.ndarray, start: int) -> int:
    """End of the run of flat lines of one colour from ``start`` (a pad, then the photo's own flat sky)."""
    k = start
    while k < len(std) and std[k] <= UNIFORM_STD and (k == start or abs(mean[k] - mean[k - 1]) < SAME_COLOUR):
        k += 1
    return k


def _sharp(std: np.ndarray, mean: np.ndarray, k: int) -> bool:
    """Whether the flat line ``k - 1`` meets the picture with an edge (within the next two lines)."""
    after = slice(k, min(len(std), k + 2))
    return bool(std[after].max() >= SHARP_STD or np.abs(mean[after] - mean[k - 1]).max() >= SHARP_STEP)


def _run(flags: np.ndarray, start: int, value: bool) -> int:
    """End of the run of ``value`` starting at ``start``."""
    rest = flags[start:] != value
    hit = np.flatnonzero(rest)
    return start + int(hit[0]) if len(hit) else len(flags)


# photoembed.imaging.fingerprint at 35f3d63.


def reference_fingerprint(image: Image.Image) -> Fingerprint:
    """The format-2 fingerprint as first written (commit 35f3d63)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    grey_full = rgb.convert("L")
    g = np.asarray(grey_full)
    top, bottom, left, right = _content_box(g)
    h, w = g.shape
    if (bottom - top) > (1 - MIN_TRIM) * h and (right - left) > (1 - MIN_TRIM) * w:
        top, bottom, left, right = 0, h, 0, w  # a plain photo with a flat edge: its hash stays exact
    else:
        rgb = rgb.crop((left, top, right, bottom))
    grey = rgb.convert("L")
    content = np.asarray(grey)
    lo, hi = np.percentile(content, (1, 99)) if content.size else (0.0, 0.0)
    contrast = max(0, min(255, round(float(hi - lo))))
    bits, quality = pdqhash.compute(np.asarray(rgb))
    quality_byte = max(0, min(100, int(quality)))
    if quality_byte < LOW_QUALITY and contrast >= MIN_CONTRAST:
        stretched = np.clip((content.astype(np.float32) - lo) * (255.0 / max(1.0, float(hi - lo))), 0, 255)
        s_bits, s_quality = pdqhash.compute(
            np.ascontiguousarray(np.repeat(stretched.astype(np.uint8)[..., None], 3, 2))
        )
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
    lo, hi = np.percentile(image, (1, 99))
    if hi - lo < _STRETCH_BELOW:  # a low-contrast (misty) photo: stretch first, or FAST finds few corners
        image = np.clip((image.astype(np.float32) - lo) * (255.0 / max(1.0, float(hi - lo))), 0, 255).astype(np.uint8)
    image = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(image)
    orb = cv2.ORB_create(
        nfeatures=MAX_KEYPOINTS * 5, scaleFactor=1.2, nlevels=6, edgeThreshold=19, patchSize=19, fastThreshold=7
    )
    keypoints = orb.detect(image, None)
    if not keypoints:
        return size, *empty
    pts = np.array([k.pt for k in keypoints], dtype=np.float32)
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
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    return size, points, np.ascontiguousarray(descriptors, dtype=np.uint8)


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
