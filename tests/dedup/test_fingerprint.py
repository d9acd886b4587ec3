from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from photoembed.dedup.match import MIN_QUALITY, PDQ_STRICT, crop_alignment, pdq_distance
from photoembed.imaging.fingerprint import FINGERPRINT_BYTES, MAX_KEYPOINTS, fingerprint, parse
from tests.dedup.conftest import scene


def _image(tmp_path: Path, seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    return scene(seed, size)


def test_blob_layout_and_resize_invariance(tmp_path: Path) -> None:
    image = _image(tmp_path, 1)
    mark = fingerprint(image)
    assert len(mark.phash) > FINGERPRINT_BYTES  # format 2: the local features follow the thumbnail
    parsed = parse(mark.phash)
    assert parsed is not None
    assert parsed.thumb is not None
    assert parsed.features is not None
    assert 50 <= len(parsed.features.points) <= MAX_KEYPOINTS
    assert parsed.features.descriptors.shape == (len(parsed.features.points), 32)
    assert parsed.quality >= MIN_QUALITY
    smaller = parse(fingerprint(image.resize((200, 150))).phash)
    assert smaller is not None
    assert pdq_distance(parsed.pdq, smaller.pdq) <= PDQ_STRICT
    other = parse(fingerprint(_image(tmp_path, 2)).phash)
    assert other is not None
    assert pdq_distance(parsed.pdq, other.pdq) > PDQ_STRICT


def test_uniform_images_have_low_quality() -> None:
    ramp = np.tile(np.linspace(90, 200, 400, dtype=np.float32), (300, 1))
    sky = Image.fromarray(np.stack([ramp * 0.6, ramp * 0.8, ramp], axis=-1).astype(np.uint8))
    black = Image.new("RGB", (400, 300), (2, 2, 2))
    for image in (sky, black):
        parsed = parse(fingerprint(image).phash)
        assert parsed is not None
        assert parsed.quality < MIN_QUALITY


def test_sharpness_orders_blur(tmp_path: Path) -> None:
    image = _image(tmp_path, 3)
    assert fingerprint(image).sharpness > 2 * fingerprint(image.filter(ImageFilter.GaussianBlur(3))).sharpness


def test_thread_safe_and_deterministic(tmp_path: Path) -> None:
    images = [_image(tmp_path, s) for s in range(6)]
    serial = [fingerprint(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(fingerprint, images * 3))
    assert parallel == serial * 3


def test_crop_alignment_separates_crops_from_other_parts(tmp_path: Path) -> None:
    image = _image(tmp_path, 4, size=(640, 480))
    whole = parse(fingerprint(image).phash)
    crop = parse(fingerprint(image.crop((64, 0, 640, 432))).phash)  # 10 % off the left and bottom
    left = parse(fingerprint(image.crop((0, 0, 352, 480))).phash)
    right = parse(fingerprint(image.crop((288, 0, 640, 480))).phash)
    assert whole
    assert crop
    assert left
    assert right
    assert whole.thumb is not None
    assert crop.thumb is not None
    assert left.thumb is not None
    assert right.thumb is not None
    assert crop_alignment(whole.thumb, crop.thumb) >= 0.6
    assert crop_alignment(left.thumb, right.thumb) < 0.6
