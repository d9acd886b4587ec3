"""The CLIP encoder: photos and texts to L2-normalised vectors.

Threading contract: :meth:`ClipEncoder.prepare` is a pure function of the image (PIL and numpy only) and may
run in any number of decode threads at once. :meth:`~ClipEncoder.encode_images`,
:meth:`~ClipEncoder.encode_texts` and :meth:`~ClipEncoder.unload` belong to one thread: the one that owns the
model (the embedding thread, or the search thread for a text-only encoder).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from photoembed.ml.build import TOWERS, ModelSpec, load_model, load_tokenizer
from photoembed.ml.preprocess import Preprocess
from photoembed.ml.runtime import DeviceChoice, choose_device, configure_torch

if TYPE_CHECKING:
    import torch

    from photoembed.ml.models import ModelStore

logger = logging.getLogger(__name__)


class ClipEncoder:
    """A loaded open_clip model. Build it with :meth:`load`.

    Attributes:
        name: the model, ``ARCH/TAG``.
        dim: the embedding size.
        image_size: the side of the square model input (the longer side, for the rare non-square models).
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        towers: the towers that are loaded.
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        model: torch.nn.Module,
        tokenizer: Callable[[list[str]], torch.Tensor] | None,
        device: DeviceChoice,
        towers: frozenset[str],
    ) -> None:
        self.name = spec.name
        self.dim = spec.embed_dim
        self.preprocess = Preprocess.from_cfg(spec.preprocess_cfg)
        # The decode size asked of the decoder: the longer side of a non-square input covers both.
        self.image_size = max(self.preprocess.size)
        self.device: str = device.device
        self.towers = towers
        self._half = device.half
        self._model: torch.nn.Module | None = model
        self._tokenizer = tokenizer

    @classmethod
    def load(
        cls,
        store: ModelStore,
        name: str,
        *,
        device: str = "auto",
        threads: int = 0,
        towers: Iterable[str] = TOWERS,
    ) -> ClipEncoder:
        """Load model ``name`` from ``store``.

        Args:
            store: where the weights are.
            name: ``ARCH/TAG``.
            device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
            threads: torch intra-op threads; 0 leaves one core for the UI and decoding.
            towers: ``("image", "text")``, or ``("text",)`` for text search only (the image tower, most of
                the model, is never read into memory), or ``("image",)`` for indexing.

        Raises:
            ModelUnavailableError: no weights for ``name``; the message says how to get them.
            KnownError: the weights file is unreadable or does not fit the architecture.
        """
        wanted = frozenset(towers)
        spec = store.spec(name)  # ModelUnavailableError before any torch import
        configure_torch(threads)
        choice = choose_device(device)
        started = time.perf_counter()
        model = load_model(spec, towers=wanted, device=choice.device)
        tokenizer = load_tokenizer(spec) if "text" in wanted else None
        logger.info(
            "Loaded %s (%s) on %s in %.2f s",
            name,
            "+".join(sorted(wanted)),
            choice.device,
            time.perf_counter() - started,
        )
        return cls(spec=spec, model=model, tokenizer=tokenizer, device=choice, towers=wanted)

    def prepare(
        self,
        image: Image.Image,
        *,
        original_size: tuple[int, int] | None = None,
        extent: tuple[float, float, float, float] | None = None,
    ) -> np.ndarray:
        """Turn a PIL image into the model input, float32 [3, H, W], exactly as open_clip would. Thread-safe.

        ``original_size`` and ``extent`` (``DecodedPhoto.geometry``) place a reduced decode in the original
        photo, so the resize geometry is the one of the full image.
        """
        return self.preprocess(image, original_size=original_size, extent=extent)

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        """Embed a batch of prepared images (float32 [n, 3, S, S]) into float32 [n, dim], unit length."""
        import torch

        model = self._require("image")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a float32 [n, 3, S, S] batch, got shape {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), self._autocast():
            features = model.encode_image(pixels)
            return self._to_numpy(features)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts into float32 [n, dim], unit length."""
        import torch

        model = self._require("text")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        assert self._tokenizer is not None  # loaded with the text tower
        tokens = self._tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self._autocast():
            features = _encode_text_trimmed(model, tokens)
            return self._to_numpy(features)

    def unload(self) -> None:
        """Free the model's memory; the encoder cannot encode afterwards."""
        if self._model is None:
            return
        self._model = None
        self._tokenizer = None
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _require(self, tower: str) -> Any:
        if self._model is None:
            raise RuntimeError(f"{self.name} was unloaded")
        if tower not in self.towers:
            raise RuntimeError(f"{self.name} was loaded without its {tower} tower")
        return self._model

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        import torch

        if self._half:
            # float16 matrix products on the GPU; autocast keeps LayerNorm and softmax in float32.
            return torch.autocast(device_type=self.device, dtype=torch.float16)
        return contextlib.nullcontext()

    @staticmethod
    def _to_numpy(features: torch.Tensor) -> np.ndarray:
        import torch

        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)


def benchmark_model(encoder: ClipEncoder, *, batch_size: int, seconds: float = 5.0) -> float:
    """Model-only throughput: prepared tensors straight into ``encode_images``, in images per second.

    The inputs are random pixels (the speed of a forward pass does not depend on them); the first batch is
    a warm-up and is not counted. At least two timed batches run, however short ``seconds`` is.
    """
    rng = np.random.default_rng(0)
    size = encoder.preprocess.size
    batch = rng.standard_normal((batch_size, 3, size[0], size[1]), dtype=np.float32)
    encoder.encode_images(batch)
    done = 0
    started = time.perf_counter()
    while True:
        encoder.encode_images(batch)
        done += batch_size
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and done >= 2 * batch_size:
            return done / elapsed


def _encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` computed only up to the last end-of-text token of the batch.

    CLIP's text transformer is causal and pools at the end-of-text token, so the padding after it cannot
    change the result; a typical query is ~10 of the 77 context tokens, so this makes text encoding
    several times cheaper (measured 2.1x on ViT-B-32 under load; outputs equal to 1e-7). Models with
    another text tower or pooling take open_clip's own path.
    """
    import torch

    clip: Any = model  # open_clip's CLIP: its attributes are typed as Tensor | Module
    attn_mask = getattr(model, "attn_mask", None)
    pool_type = getattr(model, "text_pool_type", None)
    eos_id = getattr(model, "text_eos_id", None)
    if not isinstance(attn_mask, torch.Tensor) or pool_type not in ("argmax", "eos") or not hasattr(
        model, "token_embedding"
    ):
        return clip.encode_text(tokens)
    if pool_type == "argmax":
        pool_at = tokens.argmax(dim=-1)
    else:
        if eos_id is None:
            return clip.encode_text(tokens)
        pool_at = (tokens == eos_id).int().argmax(dim=-1)
    length = int(pool_at.max().item()) + 1
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens[:, :length]).to(cast_dtype)
    x = x + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.transformer(x, attn_mask=attn_mask[:length, :length])
    x = clip.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), pool_at]
    projection = clip.text_projection
    if projection is None:
        return pooled
    if isinstance(projection, torch.nn.Linear):
        return projection(pooled)
    return pooled @ projection
