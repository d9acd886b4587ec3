"""Two shutter releases are never "the same photo": a burst or a tripod series with nearly the same pixels.

The pixel tests (PDQ, local features with a caption's tolerance) cannot tell a frame of a burst from a
re-encoded copy when little moves in the scene; the photos' own EXIF capture times can. A re-save, resize
or edit copies the tags; a second exposure records its own time.
"""

from __future__ import annotations

import math

import pytest
from PIL import ImageEnhance

from photoembed.dedup.engine import different_exposures
from photoembed.dedup.service import DedupService
from tests.dedup.conftest import PhotoLibrary, scene

T0 = 1_690_000_000.25  # a capture time with milliseconds (SubSecTimeOriginal)


@pytest.mark.parametrize(
    ("a", "b", "different"),
    [
        (T0, T0, False),  # one exposure, copied tags
        (T0, T0 + 0.1, True),  # a burst at 10 frames/s
        (T0, T0 + 1.0, True),  # a second apart
        (T0, T0 + 3600.0, False),  # the same exposure read in another time zone (the offset tag lost)
        (T0, T0 - 5.5 * 3600, False),  # a half-hour zone
        (T0, T0 + 3600.1, True),  # an hour and a tenth: not a zone shift
        (T0, math.nan, False),  # one has no EXIF time: nothing is known
        (math.nan, math.nan, False),
    ],
)
def test_different_exposures(a: float, b: float, different: bool) -> None:
    assert different_exposures(a, b) is different
    assert different_exposures(b, a) is different


def _burst(library: PhotoLibrary, times: list[float | None]) -> list[str]:
    """One scene saved as several frames that differ only a little (exposure drift), with these EXIF times."""
    names = []
    for k, when in enumerate(times):
        name = f"frame{k}.jpg"
        frame = ImageEnhance.Brightness(scene(21)).enhance(1.0 + 0.03 * k)
        frame.save(library.root / name, quality=92)
        library.add(library.root / name, taken=when if when is not None else T0 + 50_000,
                    exif_date=when is not None)
        names.append(name)
    return names


def test_frames_of_a_burst_are_not_the_same_photo(library: PhotoLibrary, service: DedupService) -> None:
    _burst(library, [T0, T0 + 0.1, T0 + 0.2])
    # Without CLIP vectors there is no similar-shots tier: the frames form no cluster at all.
    assert service.find_clusters(tier="same") == []


def test_copies_of_one_exposure_still_match(library: PhotoLibrary, service: DedupService) -> None:
    names = _burst(library, [T0, T0, T0 + 3600.0, None])
    clusters = service.find_clusters(tier="same")
    assert [(c.tier, {p.path.name for p in c.photos}) for c in clusters] == [("same", set(names))]


def test_a_burst_frame_does_not_join_through_a_shared_copy(library: PhotoLibrary, service: DedupService) -> None:
    # frame0 and its EXIF-less copy (frame2) are one photo; frame1 is another exposure of the scene. frame2 could
    # match both: frame1 must stay out of frame0's cluster whichever way the star grows.
    _burst(library, [T0, T0 + 0.5, None])
    clusters = service.find_clusters(tier="same")
    for cluster in clusters:
        names = {p.path.name for p in cluster.photos}
        assert not {"frame0.jpg", "frame1.jpg"} <= names
