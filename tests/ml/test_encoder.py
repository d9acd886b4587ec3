"""ClipEncoder on the tiny open_clip model: real forward passes, installed through the local-weights path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoembed.errors import KnownError
from photoembed.ml.encoder import ClipEncoder, benchmark_model
from photoembed.ml.models import ModelStore
from tests.conftest import make_photo
from tests.tiny_clip import TinyModel, write_tiny_model

pytestmark = pytest.mark.model


def _photos(tmp_path: Path, count: int) -> list[Image.Image]:
    images = []
    for seed in range(count):
        with Image.open(make_photo(tmp_path / f"{seed}.png", seed=seed, size=(80 + 10 * seed, 60))) as image:
            images.append(image.convert("RGB"))
    return images


def test_attributes(tiny_encoder: ClipEncoder, tiny_model: TinyModel) -> None:
    assert tiny_encoder.name == tiny_model.model_name
    assert tiny_encoder.dim == 32
    assert tiny_encoder.image_size == 32
    assert tiny_encoder.device == "cpu"


def test_encode_images_unit_length_and_deterministic(tiny_encoder: ClipEncoder, tmp_path: Path) -> None:
    batch = np.stack([tiny_encoder.prepare(image) for image in _photos(tmp_path, 4)])
    assert batch.shape == (4, 3, 32, 32)
    assert batch.dtype == np.float32

    first = tiny_encoder.encode_images(batch)
    again = tiny_encoder.encode_images(batch)

    assert first.shape == (4, 32)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, again)
    # Distinct photos give distinct vectors (random weights still separate different inputs).
    assert np.abs(first[0] - first[1]).max() > 1e-3
    # A photo's vector does not depend on its neighbours in the batch.
    np.testing.assert_allclose(tiny_encoder.encode_images(batch[1:2]), first[1:2], atol=1e-5)


def test_encode_texts(tiny_encoder: ClipEncoder) -> None:
    vectors = tiny_encoder.encode_texts(["a dog on a beach", "a red car", "a dog on a beach"])
    assert vectors.shape == (3, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
    assert tiny_encoder.encode_texts([]).shape == (0, 32)


def test_encode_images_checks_the_shape(tiny_encoder: ClipEncoder) -> None:
    with pytest.raises(ValueError, match=r"\[n, 3, S, S\]"):
        tiny_encoder.encode_images(np.zeros((3, 32, 32), dtype=np.float32))
    assert tiny_encoder.encode_images(np.zeros((0, 3, 32, 32), dtype=np.float32)).shape == (0, 32)


def test_text_only_encoder_drops_the_image_tower(
    tiny_store: ModelStore, tiny_model: TinyModel, tiny_encoder: ClipEncoder
) -> None:
    text_only = ClipEncoder.load(tiny_store, tiny_model.model_name, device="cpu", threads=1, towers=("text",))
    assert text_only.towers == {"text"}
    queries = ["a dog on a beach", "a red car"]
    np.testing.assert_allclose(text_only.encode_texts(queries), tiny_encoder.encode_texts(queries), atol=1e-5)
    with pytest.raises(RuntimeError, match="without its image tower"):
        text_only.encode_images(np.zeros((1, 3, 32, 32), dtype=np.float32))
    text_only.unload()
    with pytest.raises(RuntimeError, match="unloaded"):
        text_only.encode_texts(["a dog"])


def test_image_only_encoder(tiny_store: ModelStore, tiny_model: TinyModel, tiny_encoder: ClipEncoder) -> None:
    image_only = ClipEncoder.load(tiny_store, tiny_model.model_name, device="cpu", threads=1, towers=("image",))
    batch = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(image_only.encode_images(batch), tiny_encoder.encode_images(batch), atol=1e-5)
    with pytest.raises(RuntimeError, match="without its text tower"):
        image_only.encode_texts(["a dog"])


def test_safetensors_weights_give_the_same_vectors(tmp_path: Path, tiny_encoder: ClipEncoder) -> None:
    files = write_tiny_model(tmp_path / "st", fmt="safetensors")
    store = ModelStore(tmp_path / "models", tmp_path / "downloads")
    name = store.install(files.weights_path, name=files.model_name, config=files.config_path)
    encoder = ClipEncoder.load(store, name, device="cpu", threads=1, runtime="torch")
    batch = np.random.default_rng(2).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(encoder.encode_images(batch), tiny_encoder.encode_images(batch), atol=1e-6)
    np.testing.assert_allclose(encoder.encode_texts(["x"]), tiny_encoder.encode_texts(["x"]), atol=1e-6)


def test_weights_damaged_after_install(tmp_path: Path, tiny_model: TinyModel) -> None:
    store = ModelStore(tmp_path / "models", tmp_path / "downloads")
    name = store.install(tiny_model.weights_path, name=tiny_model.model_name, config=tiny_model.config_path)
    weights = store.weights_for(name)
    assert weights is not None
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(KnownError, match="not a weights file photoembed can read"):
        ClipEncoder.load(store, name, device="cpu", threads=1)


def test_benchmark_model_measures_throughput(tiny_encoder: ClipEncoder) -> None:
    rate = benchmark_model(tiny_encoder, batch_size=4, seconds=0.05)
    assert rate > 0
