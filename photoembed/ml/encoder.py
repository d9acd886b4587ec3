"""The CLIP encoder: photos and texts to L2-normalised vectors.

Threading contract: :meth:`ClipEncoder.prepare` is a pure function of the image (PIL and numpy only) and may
run in any number of decode threads at once. :meth:`~ClipEncoder.encode_images`,
:meth:`~ClipEncoder.encode_texts` and :meth:`~ClipEncoder.unload` belong to one thread: the one that owns the
model (the embedding thread, or the search thread for a text-only encoder).

Each tower runs on an engine (:mod:`photoembed.ml.engine`): ONNX Runtime on a CPU when the model's verified
ONNX export exists (made on first use), torch on a GPU or when there is no usable export. With an export, a
text-only encoder (text search) imports neither torch nor open_clip.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from photoembed.ml.engine import (
    Engine,
    OrtEngine,
    RuntimeChoice,
    TorchEngine,
    choose_runtime,
    embedding_key,
    gc_paused,
    normalize,
    pool_positions_numpy,
)
from photoembed.ml.preprocess import Preprocess

if TYPE_CHECKING:
    import torch

    from photoembed.ml.build import ModelSpec
    from photoembed.ml.models import ModelStore
    from photoembed.ml.onnx_export import OnnxExport

logger = logging.getLogger(__name__)

TOWERS = ("image", "text")
Tokenizer = Callable[[list[str]], np.ndarray]


class ClipEncoder:
    """A loaded CLIP model. Build it with :meth:`load`.

    Attributes:
        name: the name its vectors are stored under: the model, ``ARCH/TAG``, plus ``@ort-int8`` under the
            opt-in quantised runtime setting (whose vectors must not mix with exact ones;
            :attr:`photoembed.config.Settings.embedding_model` follows the same rule).
        model: the model, ``ARCH/TAG``.
        dim: the embedding size.
        image_size: the side of the square model input (the longer side, for the rare non-square models).
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        towers: the towers that are loaded.
        runtime: the engine of each loaded tower, in words (``"ONNX Runtime fp32 on cpu"``).
    """

    def __init__(
        self,
        *,
        model: str,
        dim: int,
        preprocess_cfg: dict[str, Any],
        engines: dict[str, Engine],
        tokenizer: Tokenizer | None,
        text_pool: tuple[str, int | None] | None,
        device: str,
        int8_key: bool = False,
    ) -> None:
        self.model = model
        self.name = embedding_key(model, "int8" if int8_key else "fp32")
        self.dim = dim
        self.preprocess = Preprocess.from_cfg(preprocess_cfg)
        # The decode size asked of the decoder: the longer side of a non-square input covers both.
        self.image_size = max(self.preprocess.size)
        self.device: str = device
        self.towers = frozenset(engines)
        self._engines: dict[str, Engine] | None = engines
        self._tokenizer = tokenizer
        self._text_pool = text_pool
        self.runtime = {
            tower: f"{'ONNX Runtime' if e.runtime == 'onnxruntime' else 'torch'} {e.precision} on {device}"
            for tower, e in engines.items()
        }

    @classmethod
    def load(
        cls,
        store: ModelStore,
        name: str,
        *,
        device: str = "auto",
        threads: int = 0,
        towers: Iterable[str] = TOWERS,
        runtime: str = "auto",
    ) -> ClipEncoder:
        """Load model ``name`` from ``store``.

        Args:
            store: where the weights are.
            name: ``ARCH/TAG``.
            device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
            threads: the model's threads (torch intra-op, or ONNX Runtime intra-op with inter-op 1); 0
                leaves one core for the UI and decoding.
            towers: ``("image", "text")``, or ``("text",)`` for text search only (the image tower, most of
                the model, is never read into memory), or ``("image",)`` for indexing.
            runtime: ``"auto"`` (torch on a GPU, else ONNX Runtime), ``"torch"``, ``"onnx"``, or the opt-in
                ``"onnx-int8"`` (quantised image tower: faster, not exact).

        Raises:
            ModelUnavailableError: no weights for ``name``; the message says how to get them.
            KnownError: the weights file is unreadable or does not fit the architecture.
        """
        from photoembed.errors import ModelUnavailableError
        from photoembed.ml.models import unavailable_message
        from photoembed.ml.runtime import default_threads

        wanted = frozenset(towers)
        if not wanted or not wanted <= set(TOWERS):
            raise ValueError(f"towers must be a non-empty subset of {TOWERS}, not {tuple(towers)}")
        weights = store.weights_for(name)
        if weights is None:  # before any heavy import
            raise ModelUnavailableError(unavailable_message(name))
        choice = choose_runtime(runtime, device=device, use_gpu=device != "cpu")
        model_threads = threads if threads > 0 else default_threads()
        started = time.perf_counter()
        with gc_paused():
            if choice.engine == "onnxruntime":
                encoder = cls._load_onnx(store, name, weights, wanted, choice, model_threads)
            else:
                encoder = cls._load_torch(store.spec(name), wanted, choice, threads, int8_key=runtime == "onnx-int8")
        logger.info(
            "Loaded %s (%s) in %.2f s: %s",
            name,
            "+".join(sorted(wanted)),
            time.perf_counter() - started,
            ", ".join(f"{tower} on {label}" for tower, label in sorted(encoder.runtime.items())),
        )
        return encoder

    @classmethod
    def _load_onnx(
        cls, store: ModelStore, name: str, weights: Any, wanted: frozenset[str], choice: RuntimeChoice, threads: int
    ) -> ClipEncoder:
        from photoembed.ml.onnx_export import find_export

        folder = store.onnx_dir(name)
        digest = store.weights_digest(name)
        export = find_export(folder, name, weights, digest)
        model: torch.nn.Module | None = None
        spec: ModelSpec | None = None
        if export is None:
            spec = store.spec(name)
            model, export = _export(spec, folder, digest, threads)
        engines: dict[str, Engine] = {}
        int8 = choice.precision == "int8" and export is not None and export.tower("image") is not None
        if int8 and export is not None and export.file("image", "int8") is None:
            from photoembed.ml.onnx_export import quantize_int8

            export = quantize_int8(export)
        torch_towers = {t for t in wanted if export is None or export.tower(t) is None}
        for tower in sorted(wanted - torch_towers):
            assert export is not None
            precision = "int8" if tower == "image" and int8 else "fp32"
            path = export.file(tower, precision)
            assert path is not None
            engine = OrtEngine(path, threads=threads, precision=precision)
            if tower == "text":
                engine.load()  # a query answers at once; the image session is made by the first batch, after
                # the indexer has given the model its threads (use_threads), so it is never made twice
            engines[tower] = engine
        tokenizer: Tokenizer | None = None
        text_pool: tuple[str, int | None] | None = None
        if "text" in engines and export is not None:
            record = export.tower("text")
            assert record is not None
            tokenizer = export.tokenizer()
            text_pool = (str(record["pool"]), record.get("eos_id"))
        if torch_towers:
            for tower in sorted(torch_towers):
                reason = export.refusal(tower) if export is not None else "no export"
                logger.info("The %s tower of %s runs on torch: %s", tower, name, reason)
            spec = spec or store.spec(name)
            torch_part = cls._load_torch(spec, frozenset(torch_towers), choice, threads, model=model,
                                         int8_key=choice.precision == "int8")
            assert torch_part._engines is not None
            engines.update(torch_part._engines)
            if "text" in torch_towers:
                tokenizer, text_pool = torch_part._tokenizer, torch_part._text_pool
        if export is not None:
            dim, preprocess_cfg = export.embed_dim, export.preprocess_cfg
        else:
            assert spec is not None
            dim, preprocess_cfg = spec.embed_dim, spec.preprocess_cfg
        return cls(
            model=name,
            dim=dim,
            preprocess_cfg=preprocess_cfg,
            engines=engines,
            tokenizer=tokenizer,
            text_pool=text_pool,
            device="cpu",
            int8_key=choice.precision == "int8",
        )

    @classmethod
    def _load_torch(
        cls,
        spec: ModelSpec,
        wanted: frozenset[str],
        choice: RuntimeChoice,
        threads: int,
        *,
        model: torch.nn.Module | None = None,
        int8_key: bool = False,
    ) -> ClipEncoder:
        from photoembed.ml.build import load_model, load_tokenizer
        from photoembed.ml.engine import supports_trim
        from photoembed.ml.runtime import configure_torch

        configure_torch(threads)
        device = choice.device
        half = choice.precision == "fp16"
        model = load_model(spec, towers=wanted, device=device) if model is None else model.to(device)
        engines: dict[str, Engine] = {t: TorchEngine(model, t, device=device, half=half) for t in sorted(wanted)}
        tokenizer: Tokenizer | None = None
        text_pool: tuple[str, int | None] | None = None
        if "text" in wanted:
            open_clip_tokenizer = load_tokenizer(spec)

            def tokenizer(texts: list[str]) -> np.ndarray:
                return np.asarray(open_clip_tokenizer(texts).numpy(), dtype=np.int64)

            if supports_trim(model):
                pool = "argmax" if getattr(model, "text_pool_type", None) == "argmax" else "eos"
                text_pool = (pool, getattr(model, "text_eos_id", None))
        return cls(
            model=spec.name,
            dim=spec.embed_dim,
            preprocess_cfg=spec.preprocess_cfg,
            engines=engines,
            tokenizer=tokenizer,
            text_pool=text_pool,
            device=device,
            int8_key=int8_key,
        )

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
        engine = self._require("image")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a float32 [n, 3, S, S] batch, got shape {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize(engine.predict(np.ascontiguousarray(batch, dtype=np.float32)))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts into float32 [n, dim], unit length.

        The tokens are cut after the batch's last end-of-text token: CLIP's text transformer is causal and
        pools there, so the padding cannot change the result (a typical query is ~10 of 77 tokens).
        """
        engine = self._require("text")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        assert self._tokenizer is not None  # loaded with the text tower
        tokens = self._tokenizer(list(texts))
        if self._text_pool is not None:
            length = int(pool_positions_numpy(tokens, *self._text_pool).max()) + 1
            tokens = np.ascontiguousarray(tokens[:, :length])
        return normalize(engine.predict(tokens))

    @contextlib.contextmanager
    def use_threads(self, threads: int) -> Iterator[None]:
        """Give the image tower ``threads`` CPU threads while a batch run lasts (CPU engines only).

        torch's count is restored afterwards. ONNX Runtime fixes the count per session, so its session is
        rebuilt once with the new count and keeps it (the image tower serves only the indexer).
        """
        engine = self._engines.get("image") if self._engines is not None else None
        if threads <= 0 or self.device != "cpu" or engine is None:
            yield
            return
        if isinstance(engine, TorchEngine):
            previous = engine.threads()
            engine.set_threads(threads)
            try:
                yield
            finally:
                engine.set_threads(previous)
            return
        if isinstance(engine, OrtEngine):
            engine.set_threads(threads)
        yield

    def unload(self) -> None:
        """Free the model's memory; the encoder cannot encode afterwards.

        No ``gc.collect()`` here: the model's memory is freed by reference counting, and a full
        collection on the way out of a CLI command cost 0.5-1.5 s (issue 12).
        """
        if self._engines is None:
            return
        for engine in self._engines.values():
            engine.unload()
        self._engines = None
        self._tokenizer = None

    @property
    def loaded(self) -> bool:
        return self._engines is not None

    def _require(self, tower: str) -> Engine:
        if self._engines is None:
            raise RuntimeError(f"{self.model} was unloaded")
        engine = self._engines.get(tower)
        if engine is None:
            raise RuntimeError(f"{self.model} was loaded without its {tower} tower")
        return engine


@dataclass(frozen=True)
class RuntimePlan:
    """Which engine each tower of a model will run on, told without loading anything heavy.

    Attributes:
        choice: the runtime chosen for this machine and setting.
        key: the name vectors are stored under (``ARCH/TAG``, plus ``@ort-int8`` for the int8 runtime).
        towers: per tower, the engine in words.
        export: ``"ready"``, ``"on first use"`` (made when the model first loads), ``"refused"`` (a tower
            failed verification: it runs on torch) or ``"not used"``.
        notes: why a tower is not on the chosen engine, if one is not.
    """

    choice: RuntimeChoice
    key: str
    towers: dict[str, str]
    export: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.choice.engine,
            "device": self.choice.device,
            "precision": self.choice.precision,
            "reason": self.choice.reason,
            "key": self.key,
            "towers": self.towers,
            "export": self.export,
            "notes": list(self.notes),
        }


def plan_runtime(store: ModelStore, name: str, *, runtime: str = "auto", device: str = "auto") -> RuntimePlan:
    """What :meth:`ClipEncoder.load` would run ``name`` on; for ``photoembed status``. Torch-free on a CPU."""
    from photoembed.ml.onnx_export import find_export

    choice = choose_runtime(runtime, device=device, use_gpu=device != "cpu")
    key = embedding_key(name, "int8" if runtime == "onnx-int8" else "fp32")  # the setting decides, always
    if choice.engine != "onnxruntime":
        label = f"torch {choice.precision} on {choice.device}"
        return RuntimePlan(choice, key, dict.fromkeys(TOWERS, label), "not used")
    export = find_export(store.onnx_dir(name), name, store.weights_for(name), store.weights_digest(name))
    if export is None:
        towers = {"image": choice.label, "text": choice.label.replace("int8", "fp32")}
        return RuntimePlan(choice, key, towers, "on first use")
    towers, notes = {}, []
    for tower in TOWERS:
        if export.tower(tower) is None:
            towers[tower] = "torch fp32 on cpu"
            notes.append(f"{tower} tower: {export.refusal(tower)}")
        else:
            towers[tower] = choice.label if tower == "image" else choice.label.replace("int8", "fp32")
    return RuntimePlan(choice, key, towers, "refused" if notes else "ready", tuple(notes))


def prepare_runtime(
    store: ModelStore, name: str, *, runtime: str = "auto", device: str = "auto", threads: int = 0
) -> RuntimePlan:
    """Make the ONNX export of ``name`` now when the runtime will want it (``model install``/``download``),
    so that the first index or query does not pay for it. Returns the plan afterwards."""
    from photoembed.ml.runtime import default_threads

    plan = plan_runtime(store, name, runtime=runtime, device=device)
    if plan.export != "on first use":
        return plan
    with gc_paused():
        _export(store.spec(name), store.onnx_dir(name), store.weights_digest(name), threads or default_threads())
    return plan_runtime(store, name, runtime=runtime, device=device)


def _export(
    spec: ModelSpec, folder: Any, digest: str | None, threads: int
) -> tuple[torch.nn.Module | None, OnnxExport | None]:
    """Build the full model on torch and export it; (model, export), export None when exporting failed."""
    from photoembed.ml.build import load_model
    from photoembed.ml.onnx_export import export_model
    from photoembed.ml.runtime import configure_torch

    configure_torch(threads)
    model = load_model(spec, device="cpu")
    try:
        return model, export_model(spec, folder, model=model, digest=digest)
    except ImportError as exc:  # onnxscript missing: the exporter's own dependency
        logger.warning("Cannot export %s to ONNX (%s); it runs on torch", spec.name, exc)
        return model, None


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
