"""Which photo of a cluster to keep, and why, in words: find the original.

Criteria are compared in the user's order (settings.keeper_criteria); the first one that tells two photos
apart decides. The default order finds the original among its copies:

1. ``camera_metadata``: camera data (EXIF make/model, original date, GPS) over less or none.
2. ``earliest``: the earlier capture (both EXIF dates), then the older file among byte-different copies.
3. ``camera_format``: what a camera writes (RAW, HEIC, a JPEG with camera data) over a re-save of it; a
   PNG/TIFF whose pixels hold JPEG traces is a decoded JPEG, never "more original".
4. ``unedited``: no editor's mark (EXIF Software of an editing program, or written after its capture).
5. ``resolution``: more pixels, only among copies equal on all of the above.
6. ``sharpness``, ``file_size`` (the less compressed of two re-encodes of the same pixels, never a tone edit)
   and ``shorter_path`` break the remaining ties (similar shots: the sharper shot).

Every phrase states a fact about the two photos compared, as the front ends show them (times to the
minute), on one line. Photos in protected folders are always kept; when a cluster has any, they are its
keepers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from photoembed.imaging.formats import format_of, is_raw_format
from photoembed.imaging.jpegtrace import CLEAN_MAX, TRACE_MIN
from photoembed.storage.records import Photo

# A sharpness difference under this ratio is noise (re-encodes differ by a few percent).
_SHARPNESS_RATIO = 1.15
# Times are shown to the minute: two times in the same minute are "the same time" to the user.
_MINUTE_S = 60
# A file written this long after its capture was saved again by a program (cameras write both at once).
_EDITED_AFTER_S = 120
# EXIF Software values of editing programs (lower case, matched as substrings).
EDITORS: tuple[str, ...] = (
    "photoshop",
    "lightroom",
    "gimp",
    "snapseed",
    "darktable",
    "rawtherapee",
    "picasa",
    "affinity",
    "pixelmator",
    "luminar",
    "capture one",
    "paint.net",
    "acdsee",
    "faststone",
    "irfanview",
    "xnview",
    "imagemagick",
    "photoscape",
    "fotor",
    "vsco",
    "picsart",
    "polarr",
    "krita",
    "digikam",
    "shotwell",
    "photos extension",
)


# Grey thumbnails whose mean differs by more than this (of 255), or whose contrast by more than this ratio,
# were edited (brightness, contrast, tone): re-encodes and resizes stay within about 1 level and 2 %.
_EDIT_MEAN = 6.0
_EDIT_CONTRAST = 0.08


@dataclass(frozen=True)
class Context:
    """What the rules may know beyond the catalog rows: the grey fingerprint thumbnails by photo id."""

    thumbs: Mapping[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Criterion:
    """``better(a, b, context)``: a phrase when ``a`` beats ``b`` on this criterion, else None."""

    name: str
    better: Callable[[Photo, Photo, Context], str | None]


def tone_changed(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two grey thumbnails of one photo differ in brightness or contrast (an edit, not a re-encode)."""
    if a is None or b is None or a.shape != b.shape:
        return False
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    if abs(float(fa.mean()) - float(fb.mean())) > _EDIT_MEAN:
        return True
    sa, sb = float(fa.std()), float(fb.std())
    return max(sa, sb) > 1.0 and abs(sa - sb) / max(sa, sb) > _EDIT_CONTRAST


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


# -- 1. camera metadata ------------------------------------------------------------------------------


def camera_facts(p: Photo) -> list[str]:
    """The camera data a photo carries, in words ("Canon EOS 5D", "EXIF date", "GPS")."""
    facts = []
    if p.info.camera:
        facts.append(p.info.camera)
    if p.info.taken_from_exif:
        facts.append("EXIF date")
    if p.info.has_gps:
        facts.append("GPS")
    return facts


def _camera_metadata(a: Photo, b: Photo, _ctx: Context) -> str | None:
    fa, fb = camera_facts(a), camera_facts(b)
    if len(fa) <= len(fb):
        return None
    if not fb:
        return f"camera data ({', '.join(fa)}) over none"
    return f"more camera data ({', '.join(fa)} over {', '.join(fb)})"


# -- 2. earliest -------------------------------------------------------------------------------------


def _same_bytes(a: Photo, b: Photo) -> bool:
    return a.content_hash is not None and a.content_hash == b.content_hash and a.size == b.size


def _earliest(a: Photo, b: Photo, _ctx: Context) -> str | None:
    ta, tb = a.info.taken, b.info.taken
    if a.info.taken_from_exif and b.info.taken_from_exif and ta is not None and tb is not None:
        if ta // _MINUTE_S < tb // _MINUTE_S:
            return f"captured earlier ({_when(ta)} over {_when(tb)})"
        if ta // _MINUTE_S > tb // _MINUTE_S:
            return None
    if _same_bytes(a, b):
        return None  # identical files: which copy was written first says nothing about the photo
    ma, mb = a.mtime_ns / 1e9, b.mtime_ns / 1e9
    if ma // _MINUTE_S < mb // _MINUTE_S:
        return f"older file ({_when(ma)} over {_when(mb)})"
    return None


# -- 3. camera format --------------------------------------------------------------------------------


def _fmt(p: Photo) -> str:
    return (p.info.format or format_of(p.path.name)).lower()


def _from_camera(p: Photo) -> bool:
    return bool(p.info.camera) or p.info.taken_from_exif


def _provenance(p: Photo) -> tuple[float, str]:
    """How directly a file comes from a camera (higher: closer), and that in words."""
    fmt = _fmt(p)
    name = fmt.upper()
    if is_raw_format(fmt):
        return 6, f"RAW ({fmt[4:].upper()})"
    if fmt in ("heic", "heif"):
        return 5, name
    if fmt == "jpeg":
        return (4, "camera JPEG") if _from_camera(p) else (2, "JPEG")
    if fmt in ("png", "tiff", "bmp"):
        trace = p.info.jpeg_trace
        if trace is not None and trace >= TRACE_MIN:
            return 1.5, f"{name} of a decoded JPEG"
        if trace is not None and trace <= CLEAN_MAX:
            return 3, f"lossless {name}"
        return 2, name  # not measured (indexed before traces were), or too faint to tell: no claim
    if fmt in ("webp", "avif"):
        return 1, name
    if fmt == "gif":
        return 0.5, name
    return 0, name


def _camera_format(a: Photo, b: Photo, _ctx: Context) -> str | None:
    (ra, da), (rb, db) = _provenance(a), _provenance(b)
    if ra > rb:
        return f"{da} over {db}"
    return None


# -- 4. unedited -------------------------------------------------------------------------------------


def edit_mark(p: Photo) -> str | None:
    """Why a photo looks edited, from its EXIF (an editor's Software tag, or saved long after capture)."""
    software = p.info.software
    if software and any(editor in software.lower() for editor in EDITORS):
        return f"saved by {software}"
    taken, modified = p.info.taken, p.info.modified
    if p.info.taken_from_exif and taken is not None and modified is not None and modified - taken > _EDITED_AFTER_S:
        return f"saved again {_when(modified)}"
    return None


def _unedited(a: Photo, b: Photo, _ctx: Context) -> str | None:
    mark = edit_mark(b)
    if edit_mark(a) is None and mark is not None:
        return f"unedited over edited ({mark})"
    return None


# -- 5. resolution and the tie-breaks ----------------------------------------------------------------


def _pixels(p: Photo) -> int:
    return (p.info.width or 0) * (p.info.height or 0)


def _resolution(a: Photo, b: Photo, _ctx: Context) -> str | None:
    if _pixels(a) > _pixels(b):
        return f"higher resolution ({a.info.width}×{a.info.height} over {b.info.width}×{b.info.height})"
    return None


def _sharpness(a: Photo, b: Photo, ctx: Context) -> str | None:
    # Brightening or adding contrast raises the Laplacian's variance: between a photo and its tone edit,
    # "sharper" would pick the edit. It only tells copies of the same tone apart (or different shots).
    if tone_changed(ctx.thumbs.get(a.id), ctx.thumbs.get(b.id)):
        return None
    sa, sb = a.info.sharpness or 0.0, b.info.sharpness or 0.0
    if sa > sb * _SHARPNESS_RATIO and sa - sb > 1.0:
        return f"sharper ({sa:.0f} over {sb:.0f})"
    return None


def _file_size(a: Photo, b: Photo, ctx: Context) -> str | None:
    """Re-encodes of the same pixels: the larger file lost less. Never between a photo and its tone edit, nor
    across formats or sizes (an edit or a lossless re-save is larger for other reasons)."""
    if _fmt(a) != _fmt(b) or (a.info.width, a.info.height) != (b.info.width, b.info.height) or _pixels(a) == 0:
        return None
    if _same_bytes(a, b) or tone_changed(ctx.thumbs.get(a.id), ctx.thumbs.get(b.id)):
        return None
    if ctx.thumbs.get(a.id) is None or ctx.thumbs.get(b.id) is None:
        return None  # the tone cannot be checked: no claim
    if a.size > b.size * 1.05:
        return f"less compressed ({a.size:,} over {b.size:,} bytes, same size and format)"
    return None


def _shorter_path(a: Photo, b: Photo, _ctx: Context) -> str | None:
    if len(str(a.path)) < len(str(b.path)):
        return "shorter path"
    return None


CRITERIA: dict[str, _Criterion] = {
    c.name: c
    for c in (
        _Criterion("camera_metadata", _camera_metadata),
        _Criterion("earliest", _earliest),
        _Criterion("camera_format", _camera_format),
        _Criterion("unedited", _unedited),
        _Criterion("resolution", _resolution),
        _Criterion("sharpness", _sharpness),
        _Criterion("file_size", _file_size),
        _Criterion("shorter_path", _shorter_path),
    )
}

def compare(a: Photo, b: Photo, order: Sequence[str], context: Context | None = None) -> tuple[int, str]:
    """-1 when ``a`` should be kept over ``b``, 1 for the reverse, with the deciding phrase."""
    ctx = context or Context()
    for name in order:
        criterion = CRITERIA[name]
        phrase = criterion.better(a, b, ctx)
        if phrase:
            return -1, phrase
        phrase = criterion.better(b, a, ctx)
        if phrase:
            return 1, phrase
    tie = "identical files; the first by path" if _same_bytes(a, b) else "all else equal; the first by path"
    return (-1 if str(a.path) <= str(b.path) else 1), tie


@dataclass(frozen=True)
class KeeperDecision:
    """Per photo (same order as given): keep it or not, and why.

    Attributes:
        keep: keep this one (the keeper, or protected).
        reasons: one line each.
        keeper: the photo the others are compared with.
        phrases: for each photo, the bare fact that decided between it and the keeper ("" for the keeper).
    """

    keep: list[bool]
    reasons: list[str]
    keeper: int
    phrases: list[str]


def choose(
    photos: Sequence[Photo], protected: Sequence[bool], order: Sequence[str], context: Context | None = None
) -> KeeperDecision:
    """Pick the keeper(s) of one cluster. Always keeps at least one photo."""
    ctx = context or Context()
    candidates = [i for i, p in enumerate(protected) if p] or list(range(len(photos)))
    best = candidates[0]
    for i in candidates[1:]:
        if compare(photos[i], photos[best], order, ctx)[0] < 0:
            best = i
    keeper = photos[best]
    # The keeper by name, or by folder and name where another photo has the same name.
    shown = keeper.path.name
    if any(p.path.name == shown for i, p in enumerate(photos) if i != best):
        shown = f"{keeper.path.parent.name}/{shown}" if keeper.path.parent.name else str(keeper.path)
    phrases = ["" if i == best else compare(keeper, p, order, ctx)[1] for i, p in enumerate(photos)]
    keep: list[bool] = []
    reasons: list[str] = []
    for i in range(len(photos)):
        if protected[i]:
            keep.append(True)
            reasons.append("in a protected folder")
        elif i == best:
            keep.append(True)
            reasons.append(_keeper_reason(photos, best, order, ctx))
        else:
            keep.append(False)
            if protected[best]:
                reasons.append(f"a copy is kept in a protected folder: {keeper.path}")
            else:
                reasons.append(f"{shown} is kept: {phrases[i]}")
    return KeeperDecision(keep=keep, reasons=reasons, keeper=best, phrases=phrases)


def _keeper_reason(photos: Sequence[Photo], best: int, order: Sequence[str], ctx: Context) -> str:
    others = [p for i, p in enumerate(photos) if i != best]
    if not others:
        return "only photo"
    # The fact against the closest rival: true for it, and the weakest win over all the others.
    runner = others[0]
    for p in others[1:]:
        if compare(p, runner, order, ctx)[0] < 0:
            runner = p
    phrase = compare(photos[best], runner, order, ctx)[1]
    return f"keep: {phrase}" if len(others) == 1 else f"keep: {phrase} (against {runner.path.name})"
