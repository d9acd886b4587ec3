"""What each photo of a cluster is, relative to its keeper, in a few words ("exact copy", "resized 50%").

The service derives it from the catalog's metadata (sizes, formats, EXIF edit marks), the grey fingerprint
thumbnails (a tone edit) and the matcher's relation and score. A matcher that measures more (the crop or the
rotation it found) may write a more precise label into ``ClusterPhoto.label`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from photoembed.dedup import keeper as keeper_rules
from photoembed.imaging.formats import format_of
from photoembed.storage.records import Photo

# Aspect ratios further apart than this are a crop, not a resize.
_ASPECT_TOLERANCE = 0.02
# A side within this fraction of the keeper's is "the same size".
_SCALE_TOLERANCE = 0.02


def _same_bytes(a: Photo, b: Photo) -> bool:
    return a.content_hash is not None and a.content_hash == b.content_hash and a.size == b.size


def _aspect(p: Photo) -> float | None:
    if not p.info.width or not p.info.height:
        return None
    return p.info.width / p.info.height


def relation_label(
    keeper: Photo,
    photo: Photo,
    *,
    match: str,
    score: float,
    members: Sequence[Photo] = (),
    thumbs: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> str:
    """One photo's label relative to the keeper.

    Args:
        keeper: the cluster's keeper.
        photo: the photo to label.
        match: the matcher's relation to the keeper ("identical", "same", "similar", "keeper").
        score: the strength of that relation.
        members: the cluster's other photos (an exact copy of one of them says so).
        thumbs: the grey fingerprint thumbnails of the keeper and the photo, when known (tone edits).
    """
    if photo is keeper or photo.id == keeper.id:
        return ""
    if _same_bytes(keeper, photo) or match == "identical":
        return "exact copy"
    twin = next((m for m in members if m.id not in (photo.id, keeper.id) and _same_bytes(m, photo)), None)
    if match == "similar":
        text = f"similar {score:.2f}"
        return f"{text}, exact copy of {twin.path.name}" if twin is not None else text
    if twin is not None and twin.id < photo.id:
        return f"exact copy of {twin.path.name}"
    ka, pa = _aspect(keeper), _aspect(photo)
    if ka is not None and pa is not None:
        if abs(pa - ka) / ka > _ASPECT_TOLERANCE and abs(1 / pa - ka) / ka > _ASPECT_TOLERANCE:
            return "cropped"
        if abs(1 / pa - ka) / ka <= _ASPECT_TOLERANCE < abs(pa - ka) / ka:
            return "rotated"
    if keeper_rules.edit_mark(photo) is not None and keeper_rules.edit_mark(keeper) is None:
        return "edited"
    if keeper_rules.tone_changed(*thumbs):
        return "edited"
    kw, pw = keeper.info.width or 0, photo.info.width or 0
    kh, ph = keeper.info.height or 0, photo.info.height or 0
    if kw and pw and kh and ph:
        scale = max(pw, ph) / max(kw, kh)
        if abs(scale - 1.0) > _SCALE_TOLERANCE:
            return f"resized {scale * 100:.0f}%"
    kf = (keeper.info.format or format_of(keeper.path.name)).upper()
    pf = (photo.info.format or format_of(photo.path.name)).upper()
    if kf != pf:
        return f"converted to {pf}"
    return "re-encoded"
