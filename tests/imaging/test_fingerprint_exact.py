"""The fingerprint gives, byte for byte, what the first format-2 code gave (tests/imaging/fingerprint_reference.py).

The catalog keeps a photo's fingerprint until FORMAT_VERSION changes, so a faster fingerprint that moved a
single bit would compare new photos with old ones in two different ways. Every path of the code is covered:
plain photos, trimmed frames (pad, screenshot, print), low-contrast photos hashed after a stretch, flat
images, tiny images, other image modes, and real photos decoded as the indexer decodes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoembed.bench import dedup_kinds as kinds
from photoembed.core.indexer import FINGERPRINT_MIN_SIDE
from photoembed.imaging import fingerprint as fp
from photoembed.imaging.decode import decode_photo
from tests.dedup.conftest import scene
from tests.imaging.fingerprint_reference import reference_fingerprint


def _ramp(size: tuple[int, int], lo: float, hi: float) -> Image.Image:
    w, h = size
    ramp = np.tile(np.linspace(lo, hi, w, dtype=np.float32), (h, 1))
    return Image.fromarray(np.stack([ramp * 0.6, ramp * 0.8, ramp], axis=-1).astype(np.uint8))


def _synthetic() -> dict[str, Image.Image]:
    photo = scene(11)
    return {
        "scene 640x480": photo,
        "scene 1000x750": scene(12, (1000, 750)),
        "scene 333x517 (odd, portrait)": scene(13, (333, 517)),
        "scene 1600x300 (wide)": scene(14, (1600, 300)),
        "pad square": kinds.pad_square(photo),
        "pad square black": kinds.pad_square(photo, (0, 0, 0)),
        "phone screenshot": kinds.phone_screenshot(photo),
        "framed print": kinds.framed_print(photo),
        "patterned border": kinds.patterned_border(photo),
        "misty": kinds.misty(photo),
        "misty twice": kinds.misty(kinds.misty(scene(15, (800, 600)))),
        "sky": _ramp((400, 300), 90, 200),
        "faint ramp": _ramp((400, 300), 100, 130),
        "black": Image.new("RGB", (400, 300), (2, 2, 2)),
        "tiny 12x40": scene(16).resize((12, 40)),
        "tiny 6x6": scene(17).resize((6, 6)),
        "one pixel": Image.new("RGB", (1, 1), (10, 200, 30)),
        "mode L": photo.convert("L"),
        "mode RGBA": photo.convert("RGBA"),
        "mode P": photo.convert("P"),
    }


def _same(image: Image.Image, label: str) -> fp.Fingerprint:
    new = fp.fingerprint(image)
    old = reference_fingerprint(image)
    assert new.phash == old.phash, label
    assert new.sharpness == old.sharpness, label  # exactly: the keeper compares them
    return new


def test_synthetic_images_fingerprint_as_before() -> None:
    paths = {"normalised": 0, "trimmed": 0, "stretched features": 0}
    for label, image in _synthetic().items():
        parsed = fp.parse(_same(image, label).phash)
        assert parsed is not None
        paths["normalised"] += parsed.normalised
        if parsed.features is not None:
            paths["trimmed"] += parsed.features.box != (0.0, 1.0, 0.0, 1.0)
            paths["stretched features"] += 0 < parsed.features.contrast < 64
    # The cases above take every branch (or this test would prove less than it says).
    assert all(paths.values()), paths


def test_real_photos_fingerprint_as_before(shared_data: Path) -> None:
    photos = sorted((shared_data / "photos-large").glob("*.jpg"))
    photos += sorted((shared_data / "flickr8k").rglob("*.jpg"))[:12]
    if not photos:
        pytest.skip("no photos in ../shared/data")
    for path in photos:
        data = path.read_bytes()
        for side in sorted({FINGERPRINT_MIN_SIDE, 384}):  # the indexer's decode with and without a model
            decoded = decode_photo(data, name=path.name, min_side=side, mtime=0.0)
            _same(decoded.image, f"{path.name} at {side}")


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(0)
    cases = [np.full((1, 1), 7, np.uint8), np.array([[0, 255]], np.uint8), np.full((5, 9), 255, np.uint8)]
    for n in [*range(1, 220), 1000, 9999, 100_003]:
        cases.append(rng.integers(0, 256, (1, n), dtype=np.uint8))
        cases.append(rng.integers(100, 104, (1, n), dtype=np.uint8))  # few levels: interpolation across ties
        cases.append(np.clip(rng.normal(128, 30, (1, n)), 0, 255).astype(np.uint8))
    cases.append(np.asarray(scene(3).convert("L"))[10:-10, 5:-7])  # a non-contiguous view
    for values in cases:
        got = fp._percentiles(values)
        expected = np.percentile(values, (1, 99))
        assert all(type(v) is np.float64 for v in got)  # what the stretch's arithmetic is done in
        assert got == (expected[0], expected[1]), values.shape


def test_percentiles_count_exactly_past_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.asarray(scene(4).convert("L"))
    quick = fp._percentiles(values)
    monkeypatch.setattr(fp, "_EXACT_FLOAT32", 0)  # the exact (bincount) path for every image
    assert fp._percentiles(values) == quick == tuple(np.percentile(values, (1, 99)))
