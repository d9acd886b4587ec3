"""A tiny open_clip model with random weights, for tests that need a real model call.

The architecture is a real open_clip CLIP (ViT image tower, transformer text tower, open_clip's own BPE
tokenizer, which ships with open_clip and needs no network), only small: 32-d embeddings, 32 px images,
one layer per tower. Its weights are random but fixed by ``seed``, so the embeddings are deterministic.
Tests install it through the same local-weights path users take (``ModelStore.install(file, config=...)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

TINY_MODEL_ARCH = "photoembed-tiny"

TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class TinyModel(NamedTuple):
    weights_path: Path
    config_path: Path
    model_name: str


def write_tiny_model(directory: Path, *, seed: int = 0, fmt: str = "pt") -> TinyModel:
    """Write the tiny model's config (``photoembed-tiny.json``) and random weights into ``directory``.

    Args:
        directory: where to write (created if needed).
        seed: fixes the random weights.
        fmt: ``"pt"`` (torch.save) or ``"safetensors"``.

    Returns:
        (weights file, config file, the name to install it under).
    """
    import torch
    from open_clip.model import CLIP

    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / f"{TINY_MODEL_ARCH}.json"
    config_path.write_text(json.dumps(TINY_MODEL_CONFIG, indent=2), encoding="utf-8")
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = CLIP(**TINY_MODEL_CONFIG)
    finally:
        torch.random.set_rng_state(generator_state)
    state_dict = {key: value.contiguous() for key, value in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        weights_path = directory / f"{TINY_MODEL_ARCH}-seed{seed}.safetensors"
        save_file(state_dict, str(weights_path))
    elif fmt == "pt":
        weights_path = directory / f"{TINY_MODEL_ARCH}-seed{seed}.pt"
        torch.save(state_dict, weights_path)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return TinyModel(weights_path, config_path, f"{TINY_MODEL_ARCH}/seed{seed}")
