"""Golden tests: photoembed's encoders against open_clip's own ``create_model(...).encode_image/encode_text``.

photoembed builds the model itself (meta-device init, memory-mapped weights, one tower) and computes text
embeddings only up to the last end-of-text token; these tests hold both to open_clip's reference on the
tiny model, with a causal text tower (the trimmed path) and a non-causal one (MobileCLIP-style, which must
take open_clip's full path), so neither can drift unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photoembed.ml.encoder import ClipEncoder
from photoembed.ml.models import ModelStore
from tests.tiny_clip import TINY_MODEL_CONFIG

TEXTS = [
    "a photo of a dog.",
    "x",
    "",
    "a long caption about a sunset over the mountains with a lake, some boats and people on the shore",
    "🙂 émoji and accents",
]

pytestmark = pytest.mark.model


def _variants() -> dict[str, dict[str, Any]]:
    causal = json.loads(json.dumps(TINY_MODEL_CONFIG))
    non_causal = json.loads(json.dumps(TINY_MODEL_CONFIG))
    non_causal["text_cfg"]["no_causal_mask"] = True
    non_causal["custom_text"] = True
    return {"causal": causal, "non-causal": non_causal}


@pytest.fixture(scope="module", params=list(_variants()), ids=list(_variants()))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ClipEncoder, Any, Any]:
    """(photoembed's encoder, open_clip's reference model, its tokenizer) on the same random weights."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = _variants()[request.param]
    folder = tmp_path_factory.mktemp(f"golden-{request.param}")
    reference_dir = folder / "reference"
    reference_dir.mkdir()
    doc = {"model_cfg": cfg, "preprocess_cfg": {}}
    (reference_dir / "open_clip_config.json").write_text(json.dumps(doc), encoding="utf-8")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(7)
        model_class = open_clip.CustomTextCLIP if cfg.get("custom_text") else open_clip.CLIP
        source = model_class(**{k: v for k, v in cfg.items() if k != "custom_text"})
    finally:
        torch.random.set_rng_state(state)
    weights = reference_dir / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))

    reference = open_clip.create_model(f"local-dir:{reference_dir}").eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{reference_dir}")
    store = ModelStore(folder / "models", folder / "downloads")
    name = store.install(weights, name=f"golden-{request.param}/seed7", config=reference_dir / "open_clip_config.json")
    encoder = ClipEncoder.load(store, name, device="cpu", threads=1)
    return encoder, reference, tokenizer


def test_the_variants_are_what_they_claim(pair: tuple[ClipEncoder, Any, Any]) -> None:
    _, reference, _ = pair
    tower = getattr(reference, "text", reference)  # CustomTextCLIP keeps its text tower in .text
    mask = getattr(tower, "attn_mask", None)
    # CLIP (causal) carries a causal mask, which is what lets photoembed trim the padding; the
    # non-causal tower has none, so photoembed must run open_clip's full encode_text on it.
    assert (mask is not None) == (type(reference).__name__ == "CLIP")


def test_text_embeddings_equal_open_clips(pair: tuple[ClipEncoder, Any, Any]) -> None:
    import torch

    encoder, reference, tokenizer = pair
    got = encoder.encode_texts(TEXTS)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference.encode_text(tokenizer(TEXTS)).float(), dim=-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # One text alone and in a batch of others (the trim length depends on the longest text of the batch).
    np.testing.assert_allclose(encoder.encode_texts([TEXTS[1]])[0], expected[1], atol=1e-5)


def test_image_embeddings_equal_open_clips(pair: tuple[ClipEncoder, Any, Any]) -> None:
    import torch

    encoder, reference, _ = pair
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((4, 3, *encoder.preprocess.size)).astype(np.float32)
    got = encoder.encode_images(batch)
    with torch.inference_mode():
        expected = reference.encode_image(torch.from_numpy(batch))
        expected = torch.nn.functional.normalize(expected.float(), dim=-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_prepare_equals_open_clips_transform(pair: tuple[ClipEncoder, Any, Any], tmp_path: Path) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    from tests.conftest import make_photo

    encoder, reference, _ = pair
    transform = image_transform_v2(PreprocessCfg(**reference.visual.preprocess_cfg), is_train=False)
    with Image.open(make_photo(tmp_path / "p.png", seed=1, size=(97, 61))) as image:
        rgb = image.convert("RGB")
    np.testing.assert_allclose(encoder.prepare(rgb), transform(rgb).numpy(), atol=1e-5)
