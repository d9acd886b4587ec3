"""Pair tests of the "same photo, other file" tier, on stored fingerprints only (no file is read).

Fingerprints describe a photo's *content box* (uniform pads, UI bars and mats trimmed: photoembed.imaging.
frame), so no test below sees a border two different photos share. Any of these confirms a pair:

* PDQ hamming distance <= :data:`PDQ_STRICT` bits (of 256): resizes, re-encodes, format and colour-mode
  changes, mild brightness edits. Never for a low-contrast photo, whose hash came from a contrast stretch.
* local features (:func:`verify_features`): ORB keypoints matched one to one (Lowe's ratio), a seed
  similarity transform by RANSAC (:data:`MIN_SEED_INLIERS`), refined by guided matching (each keypoint's
  counterpart looked for where the transform puts it: a low-texture photo's plain corners fail the ratio
  test but confirm the model), with at least :data:`MIN_INLIERS` inliers and :data:`MIN_SHARE` of the
  ratio-test matches that land inside the other image explained, some of them away from the edges (a frame
  or a bar lies along them), the smaller content covering most of the larger (:data:`MIN_SPAN` per side: a
  25 % crop, not a half), and the two thumbnails, aligned by the transform, agreeing (grey, and for weak
  fits the high-passed details too: two shots of one desk from two places fit a transform with their
  keypoints, not their details; a fit explaining most matches may leave out the :data:`OCCLUDED` share of
  the pixels a caption covers). Crops, small rotations, overlays, watermarks, pads and screenshots.
* rotation or mirror: the thumbnail of one equals a rotated/flipped thumbnail of the other
  (:data:`DIHEDRAL_MIN`), for photos rotated in pixels or re-tagged with another EXIF orientation.

The thumbnail crop alignment (:func:`crop_alignment`, :func:`contains`) no longer confirms anything: on
whole frames, shared borders and UI bars won it (0.63-0.78 between screenshots of different photos).

No test is trusted for low-information images: both photos need a PDQ quality of at least
:data:`MIN_QUALITY` (sky, black frames and blank pages score 0-4).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from photoembed.imaging.fingerprint import THUMB_SIDE, LocalFeatures, opencv

PDQ_STRICT = 31
MIN_QUALITY = 50
ALIGN_MIN = 0.6
DIHEDRAL_MIN = 0.9
#: Stricter than ALIGN_MIN: a third photo links two crops of it only when it contains each this well. On the
#: photos-large variants 5-10 % crops score >= 0.72 in their original, a 55 % part of it up to 0.62 (above
#: ALIGN_MIN: only complete link kept that part out of its original's cluster).
CONTAIN_MIN = 0.7
MAX_CROP = 0.25
_COARSE_STEP = 0.05
_FINE_STEP = 0.0125
_REFINE_TOP = 2


def pdq_distance(a: bytes, b: bytes) -> int:
    """Hamming distance of two 32-byte PDQ hashes."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def dihedral_match(a: np.ndarray, b: np.ndarray) -> float:
    """Best high-pass correlation of ``a`` with a rotation or mirror image of ``b`` (no crop).

    A photo rotated in pixels (or carrying another EXIF orientation tag on the same pixels) is the same
    photo; its squashed thumbnail is exactly the rotated thumbnail, so the 7 transforms are tested directly.
    """
    fa = _normalise(_high_pass(a.astype(np.float32)))
    fb = b.astype(np.float32)
    best = -1.0
    for k in range(4):
        turned = np.rot90(fb, k)
        for candidate in (turned, turned.T) if k else (turned.T,):
            best = max(best, float((fa * _normalise(_high_pass(np.ascontiguousarray(candidate)))).sum()))
    return best


def dihedral_stack(thumb: np.ndarray) -> np.ndarray:
    """The 8 rotations and mirrors of a thumbnail, high-passed and normalised, flattened: [8, side * side].

    Row 0 is the thumbnail itself. Computed once per photo; ``dihedral_score`` of two stacks is what
    :func:`dihedral_match` computes from the thumbnails.
    """
    t = thumb.astype(np.float32)
    variants = [t]
    for k in range(4):
        turned = np.rot90(t, k)
        variants.extend([turned, turned.T] if k else [turned.T])
    stack = _normalise(_high_pass(np.stack([np.ascontiguousarray(v) for v in variants])))
    return stack.reshape(8, -1)


def dihedral_score(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of stack ``a``'s own thumbnail with a rotation or mirror of stack ``b``'s."""
    return float((b[1:] @ a[0]).max())


def contains(outer: np.ndarray, inner: np.ndarray) -> float:
    """Best high-pass correlation of ``inner`` found as a crop (5-25 % per side) of ``outer`` (one way only)."""
    return _contained(outer.astype(np.float32), inner.astype(np.float32))


def crop_alignment(a: np.ndarray, b: np.ndarray) -> float:
    """Best high-pass correlation of one thumbnail found as a crop of the other (either way round)."""
    fa = a.astype(np.float32)
    fb = b.astype(np.float32)
    first = _contained(fa, fb)
    if first >= ALIGN_MIN:  # the verdict is settled; the other direction can only raise the score
        return first
    return max(first, _contained(fb, fa))


def _contained(outer: np.ndarray, inner: np.ndarray) -> float:
    """How well ``inner`` matches some crop of ``outer``: coarse grid at 16 px, refined at 32 px."""
    outer16, inner16 = _half(outer), _half(inner)
    coarse = _coarse_params(THUMB_SIDE // 2)
    scores = _scores(outer16, inner16, coarse.matrices, coarse.matrices)
    best = np.argsort(scores, axis=None)[::-1][:_REFINE_TOP]
    result = -1.0
    for flat in best:
        iy, ix = np.unravel_index(flat, scores.shape)
        py, px = coarse.params[iy], coarse.params[ix]
        # Two refinements at 32 px: steps of 2 then 1 fine units around the best so far.
        for reach in (2, 1):
            ys, y_params = _fine(py, reach)
            xs, x_params = _fine(px, reach)
            fine = _scores(outer, inner, ys, xs)
            jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
            py, px = y_params[jy], x_params[jx]
        result = max(result, float(fine[jy, jx]))
    return result


def _scores(outer: np.ndarray, inner: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Correlation of ``inner`` with every (y, x) crop of ``outer``, both high-passed.

    The crop is ``Ry @ outer @ Rx^T``; its 3x3 box blur is ``(B Ry) @ outer @ (B Rx)^T`` (B: the box filter
    as a matrix), so the high-passed crops come from two matrix products, with no per-window filtering.
    """
    side = outer.shape[0]
    box = _box_matrix(side)
    cols = np.matmul(outer[None], xs.transpose(0, 2, 1))  # [X, S, S]
    blur_cols = np.matmul(outer[None], np.matmul(box, xs).transpose(0, 2, 1))
    windows = np.matmul(ys[:, None], cols[None]) - np.matmul(np.matmul(box, ys)[:, None], blur_cols[None]) / 9.0
    w = _normalise(windows)
    i = _normalise(_high_pass(inner))
    return np.einsum("yxab,ab->yx", w, i)


@lru_cache(maxsize=4)
def _box_matrix(side: int) -> np.ndarray:
    """3-tap box sum with edge replication, as a matrix (applied on both sides: a 3x3 box)."""
    m = np.zeros((side, side), dtype=np.float32)
    for i in range(side):
        for d in (-1, 0, 1):
            m[i, min(max(i + d, 0), side - 1)] += 1.0
    return m


def _half(x: np.ndarray) -> np.ndarray:
    s = x.shape[0] // 2
    return x.reshape(s, 2, s, 2).mean(axis=(1, 3))


def _high_pass(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(x, pad, mode="edge")
    blur = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            blur += p[..., dy : dy + h, dx : dx + w]
    return x - blur / 9.0


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(-1, -2), keepdims=True)
    norm = np.sqrt((x * x).sum(axis=(-1, -2), keepdims=True))
    return x / np.maximum(norm, 1e-6)


class _Grid:
    def __init__(self, side: int, step: float) -> None:
        params: list[tuple[float, float]] = []
        for fi in range(round(MAX_CROP / step) + 1):
            f = fi * step
            params.extend((f, oi * step) for oi in range(fi + 1))
        self.params = params
        self.matrices = np.stack([interp_matrix(side, f, o) for f, o in params])


@lru_cache(maxsize=2)
def _coarse_params(side: int) -> _Grid:
    return _Grid(side, _COARSE_STEP)


def _fine(params: tuple[float, float], reach: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    return _fine_cache(round(params[0] / _FINE_STEP), round(params[1] / _FINE_STEP), reach)


@lru_cache(maxsize=1024)
def _fine_cache(fi: int, oi: int, reach: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    mats = []
    params = []
    for df in (-reach, 0, reach):
        for do in (-reach, 0, reach):
            f, o = (fi + df) * _FINE_STEP, (oi + do) * _FINE_STEP
            if -1e-9 <= f <= MAX_CROP + 1e-9 and -1e-9 <= o <= f + 1e-9:
                mats.append(interp_matrix(THUMB_SIDE, f, o))
                params.append((f, o))
    return np.stack(mats), params


def interp_matrix(side: int, crop: float, offset: float) -> np.ndarray:
    """Bilinear resampling: pixel i of a crop keeping ``1 - crop`` from ``offset`` (fractions of side)."""
    t = (np.arange(side) + 0.5) / side
    pos = np.clip((offset + (1.0 - crop) * t) * side - 0.5, 0, side - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, side - 1)
    w = (pos - lo).astype(np.float32)
    m = np.zeros((side, side), dtype=np.float32)
    rows = np.arange(side)
    np.add.at(m, (rows, lo), 1.0 - w)
    np.add.at(m, (rows, hi), w)
    return m


# -- local features: the strict same-photo check ----------------------------------------------------------

#: Matched keypoints (RANSAC inliers of one similarity transform) a same-photo verdict needs.
MIN_INLIERS = 15
#: Share of the mutual best matches the transform explains. Different shots of one scene (a desk from
#: two places) fit a transform with 17-40 % of them (parallax, moved objects), copies with 45-95 %.
MIN_INLIER_RATIO = 0.45
MIN_SHARE = 0.2
#: The overlap (the smaller content mapped into the larger) must be at least this share of the smaller one.
MIN_OVERLAP = 0.45
#: A crop keeps at least this share of each side of the photo it comes from (MAX_CROP: 25 % cut; pads,
#: bars and frames are outside the content box already).
MIN_SPAN = 0.72
#: Inliers at least EDGE (share of each side) inside the overlap in the smaller image: a border, a bar or a
#: frame (a ring or strips along the edges) cannot put its matches there...
EDGE = 0.15
MIN_INTERIOR = 10
#: Grey correlation of the two thumbnails once aligned by the transform (see verify_features).
MIN_AGREEMENT = 0.75
#: Below this many inliers the aligned details must agree as well (MIN_DETAIL).
STRONG_INLIERS = 80
MIN_DETAIL = 0.75
#: An overlay (caption, sticker) may hide this share of the thumbnail; the rest must agree this well, grey
#: and high-passed. Text overlays measured 1.00 / 0.91-1.00 so; different photos and two shots of one desk
#: at most 0.93 / 0.88 (the desk: refused already for its low share of explained matches).
OCCLUDED = 0.15
MIN_OCCLUDED_AGREEMENT = 0.95
MIN_OCCLUDED_DETAIL = 0.9
RATIO_TEST = 0.8
#: A part that moved between two moments (someone walked, an arm rose; neither file records when it was
#: taken): at least MIN_MOVED of a's keypoints fit a second transform, of nearly the same scale and turn
#: (MOVED_SCALE, MOVED_TURN_DEG) but MOVED_PX or more away from the first, and none of them fits the first
#: or repeats within its own photo (a railing, tiles). On the 4,600 true pairs of ``bench dedup-eval
#: --bases 13 --hard 20`` the most was 15 (a railing, a spring's coils); a fifth of a frame moved, 26-57.
MOVED_PX = 12.0
MIN_MOVED = 20
MOVED_SCALE = 0.85
MOVED_TURN_DEG = 10.0
#: The preview: every PREVIEW_STRIDE-th keypoint of one photo must give at least PREVIEW_MIN ratio-test
#: matches (a verifiable copy gives 10-100) before the full match is run.
PREVIEW_STRIDE = 3
PREVIEW_MIN = 5
#: ... and one similarity transform must fit at least this many of those preview matches (RANSAC inliers):
#: 2 is any pair of matches, chance. Different photos had at most 2 for 72 % of the checks that got past
#: PREVIEW_MIN (4910 pairs of ``bench dedup-eval --hard 80``), confirmed pairs at least 4 (1114 pairs):
#: such a pair is turned down for less than half the cost of the full match.
PREVIEW_AGREE = 3
#: Scale and rotation a same-photo transform may have (a screenshot shrinks a photo; 90-degree turns and
#: mirrors are matched on the thumbnails, see dihedral_match).
MAX_SCALE = 4.0
MAX_ROTATION_DEG = 12.0
RANSAC_PX = 4.0
#: Inliers of the first model, from the ratio-test matches alone, before guided matching refines it.
MIN_SEED_INLIERS = 6
#: Guided matching: search radii (px of the feature image) round the model's prediction, one pass each,
#: and the largest descriptor distance (of 256 bits) a guided match may have.
GUIDE_PX = (10.0, 5.0)
GUIDE_HAMMING = 64
#: ... among each keypoint's this many nearest descriptors (a low-texture photo's true match is often the
#: second or third nearest: why it failed the ratio test).
GUIDE_K = 6


def verify_features(
    a: LocalFeatures, b: LocalFeatures, thumb_a: np.ndarray | None = None, thumb_b: np.ndarray | None = None
) -> float | None:
    """Same photo by local features: a similarity transform with enough well-spread inliers, or None.

    The score is the inlier count over 100, capped at 1.0. Pixel positions are in
    each photo's feature image (its content box at FEATURE_SIDE).
    """
    return explain_features(a, b, thumb_a, thumb_b)[0]


def explain_features(
    a: LocalFeatures, b: LocalFeatures, thumb_a: np.ndarray | None = None, thumb_b: np.ndarray | None = None
) -> tuple[float | None, str]:
    """:func:`verify_features` with the step that decided, in words (for diagnostics: ``bench dedup-eval``)."""
    cv2 = opencv()
    if len(a.points) < MIN_INLIERS or len(b.points) < MIN_INLIERS:
        return None, "too few keypoints"
    # A third of a's keypoints first: an unrelated pair (most candidates in a real library) has almost no
    # distinctive matches among them, and is turned down at a third of the cost.
    count = len(a.descriptors)
    preview = np.zeros(count, dtype=bool)
    preview[::PREVIEW_STRIDE] = True
    d_preview, n_preview = cv2.batchDistance(
        a.descriptors[preview], b.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=GUIDE_K
    )
    distinct = np.flatnonzero(d_preview[:, 0] < RATIO_TEST * d_preview[:, 1])
    if len(distinct) < PREVIEW_MIN:
        return None, "preview: too few distinctive matches"
    agreeing: tuple[np.ndarray | None, np.ndarray | None] = cv2.estimateAffinePartial2D(
        a.points[preview][distinct].astype(np.float32),
        b.points[n_preview[distinct, 0]].astype(np.float32),
        method=cv2.RANSAC,
        ransacReprojThreshold=RANSAC_PX,
        maxIters=2000,
        confidence=0.995,
    )
    if agreeing[1] is None or int(agreeing[1].sum()) < PREVIEW_AGREE:
        return None, "preview: no transform agrees with the distinctive matches"
    # The two nearest descriptors of each of a's other keypoints (arrays, no per-match Python objects), then
    # Lowe's ratio over all of them.
    d_rest, n_rest = cv2.batchDistance(
        a.descriptors[~preview], b.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=GUIDE_K
    )
    dist = np.empty((count, GUIDE_K), dtype=d_rest.dtype)
    nearest = np.empty((count, GUIDE_K), dtype=n_rest.dtype)
    dist[preview], dist[~preview] = d_preview, d_rest
    nearest[preview], nearest[~preview] = n_preview, n_rest
    good = np.flatnonzero(dist[:, 0] < RATIO_TEST * dist[:, 1])
    if len(good) < MIN_INLIERS:
        return None, "too few ratio-test matches"
    # One keypoint of b may be the best match of several of a: keep the closest one only (one to one).
    qb = nearest[good, 0]
    order = np.argsort(dist[good, 0], kind="stable")
    _, first = np.unique(qb[order], return_index=True)
    keep = good[order[first]]
    pa = a.points[keep].astype(np.float32)
    pb = b.points[nearest[keep, 0]].astype(np.float32)
    if len(pa) < MIN_INLIERS:
        return None, "too few one-to-one matches"
    found: tuple[np.ndarray | None, np.ndarray | None] = cv2.estimateAffinePartial2D(
        pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995
    )
    transform, mask = found
    if transform is None or mask is None:  # no model (the stubs say an array; OpenCV returns None)
        return None, "no transform"
    seed = int(mask.ravel().astype(bool).sum())
    if seed < MIN_SEED_INLIERS:
        return None, f"too few seed inliers {seed}/{len(pa)}"
    # The seed transform from the ratio-test matches, then guided matching: every keypoint of a looks for
    # its counterpart where the transform puts it (a low-texture photo's few distinctive matches give the
    # model; its many ordinary corners, which fail the ratio test, then confirm it).
    for radius in GUIDE_PX:
        guided = _guided_matches(a, b, transform, radius, nearest, dist)
        if guided is None:
            return None, "guided matching found no model"
        pa, pb, transform, inl = guided
    count = int(inl.sum())
    # Share of the ratio-test matches the transform explains, among those whose keypoint of a lands inside
    # b (a crop's original has keypoints outside the crop: they can only match falsely).
    ratio = _explained_share(a, b, keep, nearest[keep, 0], transform)
    if count < MIN_INLIERS or ratio < MIN_SHARE:
        return None, f"too few inliers {count} (share {ratio:.2f} of {len(keep)})"
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    angle = float(np.degrees(np.arctan2(transform[1, 0], transform[0, 0])))
    if not 1.0 / MAX_SCALE <= scale <= MAX_SCALE or abs(angle) > MAX_ROTATION_DEG:
        return None, f"scale {scale:.2f} or angle {angle:.1f} out of range"
    # Measure in the image whose content is the smaller part of the pair (the crop, the photo in a
    # screenshot): map the other's frame into it and require a large overlap, covered by inliers.
    wa, ha = a.size
    wb, hb = b.size
    area_a = float(wa * ha)
    area_b_in_a = float(wb * hb) / (scale * scale)
    if area_a <= area_b_in_a:
        small_pts, small_size = pa[inl], (wa, ha)
        other_corners = _corners(wb, hb) @ _invert(transform).T
    else:
        small_pts, small_size = pb[inl], (wb, hb)
        other_corners = _corners(wa, ha) @ np.vstack([transform, [0, 0, 1]]).T[:, :2]
    x0, y0 = np.maximum(other_corners.min(axis=0), 0.0)
    x1, y1 = np.minimum(other_corners.max(axis=0), small_size)
    if x1 <= x0 or y1 <= y0:
        return None, "no overlap"
    if (x1 - x0) * (y1 - y0) < MIN_OVERLAP * small_size[0] * small_size[1]:
        return None, "overlap too small"
    # ... and the smaller must be most of the larger: a crop keeps >= 75 % of each side, a part cut further
    # (the left half of a panorama) is another picture, even where the rest is bare (a clipped sky).
    if area_a <= area_b_in_a:
        large_size, to_large = (wb, hb), np.vstack([transform, [0, 0, 1]])[:2]
    else:
        large_size, to_large = (wa, ha), _invert(transform)
    inside_large = _corners(*small_size) @ to_large.T
    lx0, ly0 = np.maximum(inside_large.min(axis=0), 0.0)
    lx1, ly1 = np.minimum(inside_large.max(axis=0), large_size)
    if min((lx1 - lx0) / large_size[0], (ly1 - ly0) / large_size[1]) < MIN_SPAN:
        return None, f"span {min((lx1 - lx0) / large_size[0], (ly1 - ly0) / large_size[1]):.2f} below MIN_SPAN"
    # Inliers must reach into the middle of the content: a shared border, bar or frame lies along the edges.
    inner = (
        (small_pts[:, 0] > x0 + EDGE * (x1 - x0))
        & (small_pts[:, 0] < x1 - EDGE * (x1 - x0))
        & (small_pts[:, 1] > y0 + EDGE * (y1 - y0))
        & (small_pts[:, 1] < y1 - EDGE * (y1 - y0))
    )
    if int(inner.sum()) < MIN_INTERIOR:
        return None, f"interior inliers {int(inner.sum())}"
    # The keypoints may all sit on a small subject, or on a caption two different photos share: the whole
    # overlap must agree too. The other photo's thumbnail, warped by the transform onto this one's, must
    # correlate (grey, contrast-normalised: the low frequencies a caption or a watermark leave alone).
    if thumb_a is not None and thumb_b is not None:
        agreement = _warped_correlation(thumb_a, a.size, thumb_b, b.size, transform)
        # A transform with few inliers may be two shots of one scene from nearly the same place (a desk, a
        # view): their coarse layouts agree, their details do not line up. Then the high-passed thumbnails,
        # aligned, must correlate too (a copy's do, 0.8-0.95; two shots' 0.4-0.7).
        weak = count < STRONG_INLIERS or ratio < MIN_INLIER_RATIO
        detail = _detail_correlation(thumb_a, a, thumb_b, b, transform) if weak else 1.0
        if agreement < MIN_AGREEMENT or detail < MIN_DETAIL:
            # A caption or a sticker hides part of the photo: all the rest must agree, closely. Only for a
            # fit that explains most matches (two shots of one scene explain 20-25 %), and with the
            # OCCLUDED share of the thumbnail pixels that differ most left out.
            if ratio < MIN_INLIER_RATIO:
                return None, f"agreement {agreement:.2f}, detail {detail:.2f} ({count} inliers)"
            agreement = _warped_correlation(thumb_a, a.size, thumb_b, b.size, transform, trim=OCCLUDED)
            detail = _detail_correlation(thumb_a, a, thumb_b, b, transform, trim=OCCLUDED)
            if agreement < MIN_OCCLUDED_AGREEMENT or detail < MIN_OCCLUDED_DETAIL:
                return None, f"occluded: agreement {agreement:.2f}, detail {detail:.2f} ({count} inliers)"
    # A part of the photo that moved against the rest (someone walked, an arm rose) is another moment: its
    # matches fit a second transform. A copy's matches off the transform are chance and fit none.
    moved = _moved_part(a, b, keep, nearest[keep, 0], transform, nearest, dist)
    if moved >= MIN_MOVED:
        return None, f"a part moved: {moved} matches fit another transform ({count} inliers)"
    return float(min(1.0, count / 100.0)), f"{count} inliers"


def _guided_matches(
    a: LocalFeatures, b: LocalFeatures, transform: np.ndarray, radius: float, nearest: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Matches where ``transform`` (a -> b) predicts them, and the model refitted on them.

    Each keypoint of a takes, among its :data:`GUIDE_K` nearest descriptors in b (``nearest``, ``dist``:
    [len(a), GUIDE_K]), the closest one (at most :data:`GUIDE_HAMMING` bits away) within ``radius`` px of
    its predicted position, one to one. Returns the matched points of a and b, the refitted transform and
    its inlier mask, or None when no model fits.
    """
    cv2 = opencv()
    projected = a.points @ transform[:, :2].T.astype(np.float32) + transform[:, 2].astype(np.float32)
    near_ok = nearest >= 0
    where = b.points[np.where(near_ok, nearest, 0)]  # [len(a), K, 2]
    d2 = ((where - projected[:, None, :]) ** 2).sum(axis=2)
    fits = near_ok & (d2 <= radius * radius) & (dist <= GUIDE_HAMMING)
    # The closest descriptor that fits, per keypoint of a (the columns are nearest first).
    has = fits.any(axis=1)
    ia = np.flatnonzero(has)
    col = np.argmax(fits[has], axis=1)
    ib = nearest[ia, col].astype(np.int64)
    ham = dist[ia, col]
    # ... then per keypoint of b.
    order = np.lexsort((ham, ib))
    ia, ib = ia[order], ib[order]
    first = np.ones(len(ib), dtype=bool)
    first[1:] = ib[1:] != ib[:-1]
    ia, ib = ia[first], ib[first]
    if len(ia) < MIN_INLIERS:
        return None
    pa, pb = a.points[ia], b.points[ib]
    found: tuple[np.ndarray | None, np.ndarray | None] = cv2.estimateAffinePartial2D(
        pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=500, confidence=0.995
    )
    refit, mask = found
    if refit is None or mask is None:
        return None
    return pa, pb, refit, mask.ravel().astype(bool)


def _explained_share(
    a: LocalFeatures, b: LocalFeatures, rows_a: np.ndarray, rows_b: np.ndarray, transform: np.ndarray
) -> float:
    """Share of the matches ``rows_a[k] -> rows_b[k]`` within RANSAC_PX of ``transform``'s prediction, among
    those whose keypoint of a the transform puts inside b's feature image."""
    projected = a.points[rows_a] @ transform[:, :2].T.astype(np.float32) + transform[:, 2].astype(np.float32)
    wb, hb = b.size
    inside = (projected[:, 0] >= 0) & (projected[:, 0] <= wb) & (projected[:, 1] >= 0) & (projected[:, 1] <= hb)
    if not inside.any():
        return 0.0
    err = np.hypot(*(projected - b.points[rows_b]).T)
    return float((err[inside] <= RANSAC_PX).sum() / inside.sum())


def _moved_part(
    a: LocalFeatures,
    b: LocalFeatures,
    rows_a: np.ndarray,
    rows_b: np.ndarray,
    transform: np.ndarray,
    nearest: np.ndarray,
    dist: np.ndarray,
) -> int:
    """How many of a's keypoints a second transform puts on their counterparts in b, where ``transform``
    (the same-photo fit, a -> b) finds none: the part of the photo that moved (see MIN_MOVED).

    The second model is fitted on the ratio-test matches ``rows_a[k] -> rows_b[k]`` the first misses, then
    guided as the first (``nearest``, ``dist``: each keypoint of a's GUIDE_K nearest descriptors in b).
    """
    cv2 = opencv()
    pa = a.points[rows_a].astype(np.float32)
    pb = b.points[rows_b].astype(np.float32)
    projected = pa @ transform[:, :2].T.astype(np.float32) + transform[:, 2].astype(np.float32)
    off = np.hypot(*(projected - pb).T) > MOVED_PX
    if int(off.sum()) < MIN_SEED_INLIERS:
        return 0
    found: tuple[np.ndarray | None, np.ndarray | None] = cv2.estimateAffinePartial2D(
        pa[off], pb[off], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=1000, confidence=0.995
    )
    second, mask = found
    if second is None or mask is None or int(mask.sum()) < MIN_SEED_INLIERS:
        return 0
    scale = float(np.hypot(second[0, 0], second[1, 0]) / np.hypot(transform[0, 0], transform[1, 0]))
    turn = float(np.degrees(np.arctan2(second[1, 0], second[0, 0]) - np.arctan2(transform[1, 0], transform[0, 0])))
    turn = abs((turn + 180.0) % 360.0 - 180.0)
    if not MOVED_SCALE <= scale <= 1.0 / MOVED_SCALE or turn > MOVED_TURN_DEG:
        return 0
    # Guided by the second model, as the first: a's keypoints with a counterpart where it puts them, far
    # from where the first puts them.
    first = a.points @ transform[:, :2].T.astype(np.float32) + transform[:, 2].astype(np.float32)
    then = a.points @ second[:, :2].T.astype(np.float32) + second[:, 2].astype(np.float32)
    apart = np.hypot(*(first - then).T) > MOVED_PX
    where = b.points[np.where(nearest >= 0, nearest, 0)]
    near = (nearest >= 0) & (dist <= GUIDE_HAMMING)

    def fits(predicted: np.ndarray) -> np.ndarray:
        return (near & (((where - predicted[:, None, :]) ** 2).sum(axis=2) <= RANSAC_PX * RANSAC_PX)).any(axis=1)

    # ... and none where the first puts them: a repeated pattern (a railing, tiles) matches both ways.
    moved = np.flatnonzero(fits(then) & ~fits(first) & apart)
    if len(moved) < MIN_MOVED:
        return len(moved)
    # A repeated pattern whose copy lost the true match still repeats in a itself: the shift from the first
    # model to the second, taken within a, puts each such keypoint onto a look-alike of its own. A part that
    # moved between two moments is there once.
    within = np.vstack([_invert(transform), [0, 0, 1]]) @ np.vstack([second, [0, 0, 1]])
    shifted = a.points[moved] @ within[:2, :2].T.astype(np.float32) + within[:2, 2].astype(np.float32)
    d_self, n_self = cv2.batchDistance(
        a.descriptors[moved], a.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=GUIDE_K
    )
    others = (n_self >= 0) & (n_self != moved[:, None]) & (d_self <= GUIDE_HAMMING)
    at = a.points[np.where(n_self >= 0, n_self, 0)]
    repeats = (others & (((at - shifted[:, None, :]) ** 2).sum(axis=2) <= (2 * RANSAC_PX) ** 2)).any(axis=1)
    return int((~repeats).sum())


def _detail_correlation(
    thumb_a: np.ndarray, a: LocalFeatures, thumb_b: np.ndarray, b: LocalFeatures, transform: np.ndarray, trim: float = 0
) -> float:
    """:func:`_warped_correlation` of the high-passed thumbnails (the details, not the layout)."""
    high_a, high_b = _high_pass(thumb_a.astype(np.float32)), _high_pass(thumb_b.astype(np.float32))
    return _warped_correlation(high_a, a.size, high_b, b.size, transform, trim=trim)


def _warped_correlation(
    thumb_a: np.ndarray,
    size_a: tuple[int, int],
    thumb_b: np.ndarray,
    size_b: tuple[int, int],
    transform: np.ndarray,
    trim: float = 0.0,
) -> float:
    """Correlation of thumbnail ``a`` with ``b`` sampled where the a->b transform puts a's pixels (overlap).

    ``trim``: the share of those pixels left out, the ones whose standardised values differ most (what an
    overlay covers).
    """
    ha, wa = thumb_a.shape
    hb, wb = thumb_b.shape
    v, u = np.mgrid[0:ha, 0:wa].astype(np.float64)
    x = (u + 0.5) * size_a[0] / wa
    y = (v + 0.5) * size_a[1] / ha
    xb = transform[0, 0] * x + transform[0, 1] * y + transform[0, 2]
    yb = transform[1, 0] * x + transform[1, 1] * y + transform[1, 2]
    ub = xb * wb / size_b[0] - 0.5
    vb = yb * hb / size_b[1] - 0.5
    inside = (ub >= 0) & (ub <= wb - 1) & (vb >= 0) & (vb <= hb - 1)
    if inside.sum() < 0.25 * inside.size:
        return -1.0
    ub, vb = ub[inside], vb[inside]
    u0 = np.minimum(np.floor(ub).astype(int), wb - 2)
    v0 = np.minimum(np.floor(vb).astype(int), hb - 2)
    fu, fv = ub - u0, vb - v0
    tb = thumb_b.astype(np.float64)
    sampled = (
        tb[v0, u0] * (1 - fu) * (1 - fv)
        + tb[v0, u0 + 1] * fu * (1 - fv)
        + tb[v0 + 1, u0] * (1 - fu) * fv
        + tb[v0 + 1, u0 + 1] * fu * fv
    )
    own = thumb_a.astype(np.float64)[inside]
    own = own - own.mean()
    sampled = sampled - sampled.mean()
    if trim > 0:
        za = own / max(1e-6, float(own.std()))
        zb = sampled / max(1e-6, float(sampled.std()))
        resid = np.abs(za - zb)
        keep = resid <= np.quantile(resid, 1.0 - trim)
        own, sampled = own[keep] - own[keep].mean(), sampled[keep] - sampled[keep].mean()
    denom = float(np.sqrt((own * own).sum() * (sampled * sampled).sum()))
    return float((own * sampled).sum() / denom) if denom > 1e-6 else -1.0


def _corners(w: int, h: int) -> np.ndarray:
    return np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)


def _invert(transform: np.ndarray) -> np.ndarray:
    full = np.vstack([transform.astype(np.float64), [0, 0, 1]])
    return np.linalg.inv(full)[:2]
