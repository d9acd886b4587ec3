"""Which photo of a cluster to keep, and why, in words.

Criteria are compared in the user's order (settings.keeper_criteria); the first one that tells two photos
apart decides. Photos in protected folders are always kept; when a cluster has any, they are its keepers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from photoembed.imaging.formats import format_of, format_rank
from photoembed.storage.records import Photo

# A sharpness difference under this ratio is noise (re-encodes differ by a few percent).
_SHARPNESS_RATIO = 1.15


@dataclass(frozen=True)
class _Criterion:
    """``better(a, b)``: a phrase when ``a`` beats ``b`` on this criterion, else None."""

    name: str
    better: Callable[[Photo, Photo], str | None]


def _pixels(p: Photo) -> int:
    return (p.info.width or 0) * (p.info.height or 0)


def _resolution(a: Photo, b: Photo) -> str | None:
    if _pixels(a) > _pixels(b):
        return f"higher resolution ({a.info.width}×{a.info.height} vs {b.info.width}×{b.info.height})"
    return None


def _format_rank(p: Photo) -> int:
    return format_rank(p.info.format or format_of(p.path.name))


def _original_format(a: Photo, b: Photo) -> str | None:
    if _format_rank(a) > _format_rank(b):
        return f"more original format ({_format_name(a)} over {_format_name(b)})"
    return None


def _format_name(p: Photo) -> str:
    return (p.info.format or p.path.suffix.lstrip(".") or "unknown").upper()


def _file_size(a: Photo, b: Photo) -> str | None:
    if _format_rank(a) == _format_rank(b) and a.size > b.size:
        return f"larger file in the same format ({a.size:,} vs {b.size:,} bytes)"
    return None


def _metadata(p: Photo) -> int:
    return int(p.info.taken_from_exif) + int(p.info.has_gps)


def _has_metadata(a: Photo, b: Photo) -> str | None:
    if _metadata(a) > _metadata(b):
        what = "EXIF date and GPS" if _metadata(a) == 2 else "EXIF date" if a.info.taken_from_exif else "GPS"
        return f"has {what}"
    return None


def _sharpness(a: Photo, b: Photo) -> str | None:
    sa, sb = a.info.sharpness or 0.0, b.info.sharpness or 0.0
    if sa > sb * _SHARPNESS_RATIO and sa - sb > 1.0:
        return f"sharper ({sa:.0f} vs {sb:.0f})"
    return None


def _older(a: Photo, b: Photo) -> str | None:
    if a.mtime_ns < b.mtime_ns:
        return "older file (likely the original)"
    return None


def _shorter_path(a: Photo, b: Photo) -> str | None:
    if len(str(a.path)) < len(str(b.path)):
        return "shorter path"
    return None


CRITERIA: dict[str, _Criterion] = {
    c.name: c
    for c in (
        _Criterion("resolution", _resolution),
        _Criterion("original_format", _original_format),
        _Criterion("file_size", _file_size),
        _Criterion("has_metadata", _has_metadata),
        _Criterion("sharpness", _sharpness),
        _Criterion("older", _older),
        _Criterion("shorter_path", _shorter_path),
    )
}


def compare(a: Photo, b: Photo, order: Sequence[str]) -> tuple[int, str]:
    """-1 when ``a`` should be kept over ``b``, 1 for the reverse, with the deciding phrase."""
    for name in order:
        criterion = CRITERIA[name]
        phrase = criterion.better(a, b)
        if phrase:
            return -1, phrase
        phrase = criterion.better(b, a)
        if phrase:
            return 1, phrase
    if str(a.path) <= str(b.path):
        return -1, "all criteria equal; first by path"
    return 1, "all criteria equal; first by path"


@dataclass(frozen=True)
class KeeperDecision:
    """Per photo (same order as given): keep it or not, and why."""

    keep: list[bool]
    reasons: list[str]
    keeper: int  # the photo the others are compared with


def choose(photos: Sequence[Photo], protected: Sequence[bool], order: Sequence[str]) -> KeeperDecision:
    """Pick the keeper(s) of one cluster. Always keeps at least one photo."""
    candidates = [i for i, p in enumerate(protected) if p] or list(range(len(photos)))
    best = candidates[0]
    for i in candidates[1:]:
        if compare(photos[i], photos[best], order)[0] < 0:
            best = i
    keep: list[bool] = []
    reasons: list[str] = []
    for i, photo in enumerate(photos):
        if protected[i]:
            keep.append(True)
            reasons.append("in a protected folder")
        elif i == best:
            keep.append(True)
            runner = [j for j in range(len(photos)) if j != i]
            phrase = compare(photo, photos[runner[0]], order)[1] if runner else "only photo"
            reasons.append(f"keep: {phrase}")
        else:
            keep.append(False)
            keeper = photos[best]
            if protected[best]:
                reasons.append(f"a copy is kept in a protected folder: {keeper.path}")
            else:
                reasons.append(f"{keeper.path.name} is kept: {compare(keeper, photo, order)[1]}")
    return KeeperDecision(keep=keep, reasons=reasons, keeper=best)
