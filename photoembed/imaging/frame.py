"""Where a photo's own content is: uniform borders, UI bars and frames trimmed off.

A padded square, a phone screenshot (status bar, letterbox bands, navigation bar) or a framed print of a
photo shares its border with every other padded, screenshotted or framed photo. Any comparison that sees the
border can be won by the border (the crop-alignment score of two different screenshots reached 0.78), so
the fingerprint describes the content box this module finds, and nothing outside it.

On a grey image, line by line from each side inwards, a line is *uniform* when its standard deviation is at
most :data:`UNIFORM_STD` grey levels at :data:`WORK_SIDE` px (padding, letterbox bands, a mat; JPEG noise
stays below it; real photo rows, even misty ones, are above it nearly always). From each edge:

1. the run of flat lines of one colour at the edge is cut (a pad, a letterbox band);
2. then a *bar*: lines no longer than :data:`BAR_MAX` of the side, up to the next run of at least
   :data:`GAP_MIN` uniform lines (the status bar's text and icons then the letterbox; a frame then its
   mat), is cut with its gap, and step 1-2 repeat;

each cut only where the flat lines meet the picture with an edge (:func:`_sharp`: a misty photo fades
into its flat sky, a pad does not), never leaving less than :data:`KEEP_MIN` of either axis (an image
that is uniform throughout, a sky or a blank page, keeps its full box: it has no content to find, and its
low PDQ quality says so). A bar or a patterned border that touches the photo with no flat gap is not cut
here; the local-feature check then refuses matches that rest near the edges (photoembed.dedup.match:
interior inliers, aligned thumbnails).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

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


def content_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` pixel bounds (bottom/right exclusive) of the content of a grey image.

    Judged on a copy of :data:`WORK_SIDE` px (long side, area-averaged), so that one photo decoded at two
    sizes (grain averaged differently) gets the same box.
    """
    grey = np.asarray(grey)
    fh, fw = grey.shape
    if fh < 8 or fw < 8:
        return 0, fh, 0, fw
    scale = min(1.0, WORK_SIDE / max(fh, fw))
    if scale < 1.0:
        size = (max(8, round(fw * scale)), max(8, round(fh * scale)))
        # A uint8 image (the fingerprint's) is reduced as it is; anything else as its uint8 cast, as before.
        levels = grey if grey.dtype == np.uint8 else grey.astype(np.float32).astype(np.uint8)
        small = np.asarray(Image.fromarray(levels).resize(size, Image.Resampling.BOX), np.float32)
    else:
        small = grey.astype(np.float32)
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
