"""Two moments of one scene are never "the same photo", even when neither file records when it was taken.

A frame of a burst (or a second shot from a tripod) where someone or something moved shares most of its
pixels with the first: every hash and the caption-tolerant pixel check say "copy". What gives it away is
the moved part itself: its keypoints match the other frame under a second, shifted transform, where a
copy's matches that miss the transform are chance and fit none (at most 7 of them on the 4,600 true pairs
of the hard-kinds benchmark, at least 10 refuse a pair).
"""

from __future__ import annotations

import pytest
from PIL import Image

from photoembed.dedup.service import DedupService
from tests.dedup.conftest import PhotoLibrary, scene


def moved(image: Image.Image, *, box: tuple[float, float, float, float], shift: float) -> Image.Image:
    """``image`` with the part in ``box`` (shares of the sides) moved right by ``shift`` of the width."""
    w, h = image.size
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    out = image.copy()
    out.paste(image.crop((x0, y0, x1, y1)), (x0 + int(shift * w), y0))
    return out


@pytest.mark.parametrize("seed", [3, 8, 14])
def test_a_frame_where_a_part_moved_is_not_the_same_photo_but_its_copies_are(
    library: PhotoLibrary, service: DedupService, seed: int
) -> None:
    base = scene(seed, (800, 600))
    base.save(library.root / "first.jpg", quality=92)
    moved(base, box=(0.3, 0.25, 0.7, 0.75), shift=0.1).save(library.root / "second.jpg", quality=92)
    base.save(library.root / "first-q60.jpg", quality=60)
    base.resize((400, 300), Image.Resampling.LANCZOS).save(library.root / "first-small.jpg", quality=90)
    for name in ("first.jpg", "second.jpg", "first-q60.jpg", "first-small.jpg"):
        library.add(library.root / name)  # no EXIF capture time on any of them

    clusters = service.find_clusters(tier="same")
    assert [sorted(p.path.name for p in c.photos) for c in clusters] == [
        ["first-q60.jpg", "first-small.jpg", "first.jpg"]
    ]
