"""Candidate pairs between two photos' families go unverified once one pair between them was turned down
(photoembed.dedup.engine._Families): the clusters must be those of checking every pair."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from photoembed.bench import dedup_kinds as kinds
from photoembed.dedup import engine, match
from photoembed.dedup.engine import _Families
from photoembed.dedup.service import DedupService
from tests.dedup.conftest import PhotoLibrary

_PHOTO = re.compile(r"^p(\d+)-")
_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k" / "original"
_PHOTOS = 16


def test_families_turn_down_only_between_two_groups_of_family_min() -> None:
    fam = _Families()
    fam.record(0, 1, confirmed=True)
    fam.record(2, 3, confirmed=True)
    fam.record(1, 3, confirmed=False)
    assert not fam.turned_down(0, 2)  # groups of 2: below FAMILY_MIN, still checked
    fam.record(0, 4, confirmed=True)
    fam.record(2, 5, confirmed=True)
    assert fam.turned_down(4, 5)
    assert fam.turned_down(5, 0)
    assert not fam.turned_down(0, 4)  # one group
    assert not fam.turned_down(4, 6)  # 6 is in no group
    fam.record(6, 7, confirmed=True)
    fam.record(6, 8, confirmed=True)
    assert not fam.turned_down(6, 0)  # no pair between them turned down yet
    # A confirmed pair joins two groups: the merged group keeps the turned-down partners of both.
    fam.record(8, 4, confirmed=True)
    assert fam.turned_down(7, 2)
    assert not fam.turned_down(7, 0)


def _sources() -> list[Path]:
    found = sorted(_SHARED.glob("*.jpg")) if _SHARED.is_dir() else []
    return found[:_PHOTOS]


@pytest.mark.skipif(len(_sources()) < _PHOTOS, reason="shared photos absent (../shared/data/flickr8k)")
def test_unverified_pairs_give_the_clusters_of_checking_every_pair(
    library: PhotoLibrary, service: DedupService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real photos, each with its crops, turns, mirror, pads and frames: different photos in one frame, a
    # crop and a mirror of one photo are candidate pairs the clusters depend on.
    # Misty (low-contrast) photos, whose copies are all checked by their local features, are the others.
    for k, src in enumerate(_sources()):
        with Image.open(src) as opened:
            original = ImageOps.exif_transpose(opened).convert("RGB")
        original.thumbnail((800, 800))
        variants = [
            ("original", lambda im: im),
            *kinds.SAME_PHOTO_KINDS,
            *kinds.FRAME_KINDS,
            ("mirror", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        ]
        if k >= _PHOTOS // 2:
            original = kinds.misty(original)
            variants = [("original", lambda im: im), *kinds.MISTY_KINDS]
        for name, transform in variants:
            path = library.root / f"p{k}-{name.replace(' ', '_').replace('%', '').replace(':', '')}.jpg"
            if not path.exists():
                transform(original).save(path, quality=90) if path.suffix == ".jpg" else transform(original).save(path)
                library.add(path)
    checks = [0]
    verify = match.verify_features

    def counted(*args: object, **kwargs: object) -> float | None:
        checks[0] += 1
        return verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(match, "verify_features", counted)

    def clusters() -> list[list[str]]:
        return sorted(sorted(p.path.name for p in c.photos) for c in service.find_clusters(tier="same"))

    lazy, lazy_checks = clusters(), checks[0]
    monkeypatch.setattr(engine, "FAMILY_MIN", 10**9)  # every candidate pair checked
    checks[0] = 0
    eager, eager_checks = clusters(), checks[0]
    assert lazy == eager, (lazy_checks, eager_checks)
    assert lazy_checks < eager_checks  # the unverified path was taken
    for group in lazy:
        found = {_PHOTO.match(name) for name in group}
        assert len({m.group(1) for m in found if m is not None}) == 1, group
