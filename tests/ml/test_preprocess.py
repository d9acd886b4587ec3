"""The numpy/PIL preprocessing against open_clip's own torchvision transform.

Tolerance: 1e-5 absolute on normalised values. Both sides resize with the same PIL filter and crop the same
pixels, so differences are float32 rounding in the scale-and-normalise step only (about 1e-7 in practice).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.preprocess import Preprocess
from tests.conftest import make_photo

CONFIGS: dict[str, dict[str, Any]] = {
    "openai-bicubic-shortest": {"size": 224},
    "mobileclip-bilinear": {"size": 256, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "interpolation": "bilinear"},
    "longest-padded": {"size": 64, "resize_mode": "longest", "fill_color": 128},
    "squash": {"size": 48, "resize_mode": "squash", "interpolation": "bilinear"},
    "non-square": {"size": (40, 56)},
}
SIZES = [(320, 240), (240, 320), (100, 100), (31, 70), (224, 224), (1000, 999)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Image.Image]:
    folder = tmp_path_factory.mktemp("pre")
    images = []
    for seed, size in enumerate(SIZES):
        with Image.open(make_photo(folder / f"{seed}.png", seed=seed, size=size)) as image:
            images.append(image.convert("RGB"))
    with Image.open(make_photo(folder / "rgba.png", seed=9, size=(90, 50))) as image:
        images.append(image.convert("RGBA"))
        images.append(image.convert("L"))
    return images


@pytest.mark.model
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_open_clip_transform(config: dict[str, Any], photos: list[Image.Image]) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    reference = image_transform_v2(PreprocessCfg(**config), is_train=False)
    ours = Preprocess.from_cfg(config)
    for image in photos:
        expected = reference(image).numpy()
        got = ours(image)
        assert got.shape == expected.shape, image.size
        assert got.dtype == np.float32
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{image.size} {image.mode}")


@pytest.mark.model
def test_encoder_prepare_matches_the_models_preprocess_cfg(tiny_encoder: ClipEncoder, tmp_path: Path) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    spec_cfg = {"size": 32}  # the tiny model: open_clip defaults at its 32 px input
    reference = image_transform_v2(PreprocessCfg(**spec_cfg), is_train=False)
    with Image.open(make_photo(tmp_path / "p.png", seed=3, size=(120, 90))) as image:
        rgb = image.convert("RGB")
    np.testing.assert_allclose(tiny_encoder.prepare(rgb), reference(rgb).numpy(), atol=1e-5)


def test_rejects_unknown_resize_mode() -> None:
    with pytest.raises(ValueError, match="resize_mode"):
        Preprocess.from_cfg({"size": 32, "resize_mode": "stretch"})


def _edges(size: tuple[int, int], seed: int) -> Image.Image:
    """A sharp-edged test card: misplacing the resize by half a pixel shows as large differences."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    card = ((xx // 37 + yy // 23) % 2 * 180 + 40).astype(np.float32)
    colour = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    return Image.fromarray(np.clip(card[..., None] * colour, 0, 255).astype(np.uint8))


@pytest.mark.model
@pytest.mark.parametrize("orientation", [1, 3, 6, 7])
@pytest.mark.parametrize("config", [{"size": 64}, {"size": (40, 56)}, {"size": 48, "resize_mode": "squash"}])
def test_reduced_decode_matches_a_full_decode_through_open_clip(orientation: int, config: dict[str, Any]) -> None:
    """decode_photo's reduced JPEG + Preprocess(geometry) against full decode + open_clip's transform."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from photoembed.imaging.decode import decode_photo
    from photoembed.imaging.metadata import apply_orientation
    from tests.imaging.test_decode import INVERSE
    from tests.imaging.test_metadata import make_exif

    upright = _edges((1003, 605), seed=orientation)
    method = INVERSE[orientation]
    stored = upright.transpose(method) if method is not None else upright
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=make_exif(orientation=orientation))
    data = buffer.getvalue()
    ours = Preprocess.from_cfg(config)
    reduced = decode_photo(data, name="p.jpg", min_side=ours.size, mtime=0.0)
    assert reduced.image.size[0] < 1003  # really reduced
    full = decode_photo(data, name="p.jpg", min_side=0, mtime=0.0)
    with Image.open(io.BytesIO(data)) as reference_image:
        reference_image.load()
        assert apply_orientation(reference_image.convert("RGB"), orientation).size == full.image.size
    expected = image_transform_v2(PreprocessCfg(**config), is_train=False)(full.image).numpy()
    got = ours(reduced.image, **reduced.geometry)
    naive = ours(reduced.image)  # geometry from the rounded reduced size
    error = float(np.abs(got - expected).mean())
    assert error < 0.03, error  # JPEG DCT scaling is not a bicubic filter: small, not zero
    assert error < float(np.abs(naive - expected).mean()) or config.get("resize_mode") == "squash"
