"""Where a photo's own content is: uniform borders, UI bars and frames trimmed off.

A padded square, a phone screenshot (status bar, letterbox bands, navigation bar) or a framed print of a
photo shares its border with every other padded, screenshotted or framed photo. Any comparison that sees the
border can be won by the border (the crop-alignment score of two different screenshots reached 0.78), so
the fingerprint describes the content box this module finds, and nothing outside it.

On a grey image, line by line from each side inwards, a line is *uniform* when its standard deviation is at
most :data:`UNIFORM_STD` grey levels at :data:`WORK_SIDE` px (padding, letterbox bands, a mat; JPEG noise
stays below it; real photo rows, even misty ones, are above it nearly always). From each edge:

1. every uniform line is cut (any colour: a black status-bar background then a white pad);
2. then a *bar*: lines no longer than :data:`BAR_MAX` of the side, up to the next run of at least
   :data:`GAP_MIN` uniform lines (the status bar's text and icons then the letterbox; a frame then its
   mat), is cut with its gap, and step 1-2 repeat;

never leaving less than :data:`KEEP_MIN` of either axis (an image that is uniform throughout, a sky or a
blank page, keeps its full box: it has no content to find, and its low PDQ quality says so).
A bar that touches the photo with no uniform gap is not cut here; the local-feature check then refuses
matches that rest on a strip (photoembed.dedup.match).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

UNIFORM_STD = 2.0
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
        rows_u = region[:, mx : rw - mx].std(axis=1) <= UNIFORM_STD
        cols_u = region[my : rh - my, :].std(axis=0) <= UNIFORM_STD
        t = _cut(rows_u, h)
        b = _cut(rows_u[::-1], h)
        lft = _cut(cols_u, w)
        r = _cut(cols_u[::-1], w)
        if (bottom - top) - t - b < KEEP_MIN * h:
            t = b = 0
        if (right - left) - lft - r < KEEP_MIN * w:
            lft = r = 0
        top, bottom, left, right = top + t, bottom - b, left + lft, right - r
        if (top, bottom, left, right) == before:
            break
    return top, bottom, left, right


def _cut(uniform: np.ndarray, side: int) -> int:
    """Lines to cut from the start of ``uniform`` (one flag per line, from the edge inwards)."""
    n = len(uniform)
    bar_max = max(1, int(BAR_MAX * side))
    zone = int(BAR_ZONE * side)
    pos = _run(uniform, 0, True)
    while pos < zone:
        # The bar runs to the next gap of GAP_MIN uniform lines (single uniform lines inside a bar, between
        # a status bar and a toolbar, belong to it).
        gap_start = pos
        while True:
            bar_end = _run(uniform, gap_start, False)
            gap_end = _run(uniform, bar_end, True)
            if gap_end - bar_end >= GAP_MIN or gap_end >= n:
                break
            gap_start = gap_end
        if bar_end - pos > bar_max or gap_end >= n or gap_end - bar_end < GAP_MIN:
            break
        pos = gap_end
    return min(pos, n)


def _run(flags: np.ndarray, start: int, value: bool) -> int:
    """End of the run of ``value`` starting at ``start``."""
    rest = flags[start:] != value
    hit = np.flatnonzero(rest)
    return start + int(hit[0]) if len(hit) else len(flags)
