"""Inference engines: what runs one CLIP tower, behind one small interface.

An engine turns a batch (float32 pixels ``[n, 3, H, W]`` for the image tower, int64 tokens ``[n, L]`` for
the text tower, already cut after the last end-of-text token) into raw features ``[n, dim]``. Two kinds:

* :class:`OrtEngine`: ONNX Runtime on the CPU, from a tower exported by :mod:`photoembed.ml.onnx_export`.
  It needs neither torch nor open_clip. Its ONNX Runtime kernels use AVX-512 where the CPU has it; torch's
  MKL path on AMD CPUs runs AVX2 code only (issue 12 measured 2.0-2.2x on the model alone).
* :class:`TorchEngine`: the open_clip model on torch: CUDA and Apple MPS (float16 autocast), and the CPU
  fallback when there is no export (or it was refused).

The runtime is chosen once per encoder by :func:`choose_runtime` and is visible in ``photoembed status``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from photoembed.config import RUNTIMES

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

RUNTIME_SETTINGS = RUNTIMES
INT8_SUFFIX = "@ort-int8"


class Engine(Protocol):
    """One tower of a model, runnable on a batch. ``predict`` belongs to the thread that owns the model."""

    runtime: str  # "torch", "onnxruntime"
    precision: str  # "fp32", "fp16", "int8"

    def load(self) -> None: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def unload(self) -> None: ...


class OrtEngine:
    """An ONNX Runtime session on the CPU for one exported tower.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (the cores given to the model); inter-op is 1, batches run one at a time.
        precision: ``"fp32"`` or ``"int8"`` (a dynamically quantised export), for display.
    """

    runtime = "onnxruntime"

    def __init__(self, path: Path, *, threads: int, precision: str = "fp32") -> None:
        self.path = Path(path)
        self.threads = max(1, threads)
        self.precision = precision
        self._session: Any = None
        self._input = ""

    def load(self) -> None:
        import onnxruntime as ort

        fixed_mmap_threshold()
        ort.disable_telemetry_events()  # private and offline: no usage events, whatever the build
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT workers sleep instead of spinning: the decode pool and the UI share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # MLAS pre-packs the weights of every MatMul into its GEMM layout once, instead of on each call. With
        # the initializers outside the arena, the unpacked originals are given back to the system once packed,
        # so pre-packing costs no memory: ViT-B-32-256, batch 16, one thread, measured side by side:
        # 114 -> 97-101 ms CPU per image, peak RSS 631 (no pre-packing) -> 530 MB (with this and the
        # memory pattern off); pre-packing in the arena instead: 824 MB.
        options.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
        # The memory pattern plans one block for a batch shape and allocates it on the second run next to the
        # first run's arena blocks (+100 MB measured); the arena alone reuses its blocks from batch to batch.
        options.enable_mem_pattern = False
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def set_threads(self, threads: int) -> None:
        """Change the intra-op thread count. ONNX Runtime fixes it per session, so a session made with
        another count is dropped, and the next batch makes a new one (never two sessions at once: each
        holds its own copy of the weights)."""
        threads = max(1, threads)
        if threads == self.threads:
            return
        self.threads = threads
        self._session = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:  # made on first use (or after a change of thread count)
            self.load()
        outputs = self._session.run(None, {self._input: batch})
        return np.asarray(outputs[0], dtype=np.float32)

    def unload(self) -> None:
        self._session = None


class TorchEngine:
    """One tower of an open_clip model on torch (CPU in float32; CUDA/MPS with float16 autocast).

    Args:
        model: the open_clip model (both towers may share it).
        tower: ``"image"`` or ``"text"``.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        half: float16 autocast (GPUs only).
    """

    runtime = "torch"

    def __init__(self, model: torch.nn.Module, tower: str, *, device: str, half: bool) -> None:
        self._model: torch.nn.Module | None = model
        self.tower = tower
        self.device = device
        self.half = half
        self.precision = "fp16" if half else "fp32"

    def load(self) -> None:
        """The model is built by :func:`photoembed.ml.build.load_model`; nothing more to do."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self._model is None:
            raise RuntimeError("the torch model was unloaded")
        model: Any = self._model
        inputs = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        with torch.inference_mode(), self._autocast():
            features = model.encode_image(inputs) if self.tower == "image" else encode_text_trimmed(model, inputs)
            return features.float().cpu().numpy()

    def set_threads(self, threads: int) -> None:
        if self.device != "cpu" or threads <= 0:
            return
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def threads(self) -> int:
        import torch

        return int(torch.get_num_threads())

    def unload(self) -> None:
        self._model = None
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        import torch

        if self.half:
            # float16 matrix products on the GPU; autocast keeps LayerNorm and softmax in float32.
            return torch.autocast(device_type=self.device, dtype=torch.float16)
        return contextlib.nullcontext()


# glibc's M_MMAP_THRESHOLD (mallopt parameter -3) and the value photoembed fixes it at.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
_mmap_threshold_fixed = False


def fixed_mmap_threshold() -> None:
    """Make glibc serve every allocation of 1 MiB or more with its own mapping, given back when freed.

    glibc starts at that threshold but raises it (up to 32 MiB) each time a mapped block is freed, so once the
    decode pool has freed a few photos, ONNX Runtime's weight tensors (2-9 MB each) land in the heap, and the
    unpacked weights it frees after pre-packing them stay resident. Measured on the end-to-end index of 32
    photos, ViT-B-32-256: peak RSS 957 -> 632 MB, CPU per photo unchanged (0.273 vs 0.268 s, within noise).
    Once per process; glibc on Linux only; a threshold the user set (``MALLOC_MMAP_THRESHOLD_``) is kept.
    """
    global _mmap_threshold_fixed
    if _mmap_threshold_fixed or sys.platform != "linux" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _mmap_threshold_fixed = True
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        if not libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
            logger.debug("mallopt(M_MMAP_THRESHOLD) was refused")
    except (OSError, AttributeError):  # another C library (musl): nothing to tune
        logger.debug("no glibc mallopt; the allocator keeps its own thresholds")


def normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` computed only up to the last end-of-text token of the batch.

    CLIP's text transformer is causal and pools at the end-of-text token, so the padding after it cannot
    change the result; a typical query is ~10 of the 77 context tokens, so this makes text encoding
    several times cheaper (measured 2.1x on ViT-B-32 under load; outputs equal to 1e-7). Models with
    another text tower or pooling take open_clip's own path (and get the full context back).
    """
    import torch

    clip: Any = model  # open_clip's CLIP: its attributes are typed as Tensor | Module
    if not supports_trim(model):
        context = int(clip.positional_embedding.shape[0]) if hasattr(model, "positional_embedding") else 0
        if context and tokens.shape[1] < context:
            tokens = torch.nn.functional.pad(tokens, (0, context - tokens.shape[1]))
        return clip.encode_text(tokens)
    pool_at = text_pool_positions(model, tokens)
    length = int(pool_at.max().item()) + 1
    return _text_features(clip, tokens[:, :length], pool_at)


def supports_trim(model: torch.nn.Module) -> bool:
    """True for open_clip's own text transformer with end-of-text pooling (almost every CLIP)."""
    import torch

    pool_type = getattr(model, "text_pool_type", None)
    return (
        isinstance(getattr(model, "attn_mask", None), torch.Tensor)
        and hasattr(model, "token_embedding")
        and (pool_type == "argmax" or (pool_type == "eos" and getattr(model, "text_eos_id", None) is not None))
    )


def text_pool_positions(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Where each row pools: the highest id (argmax pooling, CLIP's end-of-text) or the first eos id."""
    if getattr(model, "text_pool_type", None) == "argmax":
        return tokens.argmax(dim=-1)
    eos: Any = model.text_eos_id
    return (tokens == eos).int().argmax(dim=-1)


def _text_features(clip: Any, tokens: torch.Tensor, pool_at: torch.Tensor) -> torch.Tensor:
    """The text tower on ``tokens`` (already cut to their length), pooled at ``pool_at``."""
    import torch

    length = tokens.shape[1]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype)
    x = x + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
    x = clip.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), pool_at]
    projection = clip.text_projection
    if projection is None:
        return pooled
    if isinstance(projection, torch.nn.Linear):
        return projection(pooled)
    return pooled @ projection


def pool_positions_numpy(tokens: np.ndarray, pool: str, eos_id: int | None) -> np.ndarray:
    """:func:`text_pool_positions` on numpy tokens (the torch-free path)."""
    if pool == "argmax":
        return np.asarray(tokens.argmax(axis=-1))
    return np.asarray(np.argmax(tokens == eos_id, axis=-1))


# -- choosing the runtime ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeChoice:
    """Which engine runs the model, decided once.

    Attributes:
        engine: ``"torch"`` or ``"onnxruntime"``.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        precision: ``"fp32"``, ``"fp16"`` (torch on a GPU) or ``"int8"`` (the opted-in quantised export).
        reason: one line on why, for ``status`` and the log.
    """

    engine: str
    device: str
    precision: str
    reason: str

    @property
    def label(self) -> str:
        return f"{'ONNX Runtime' if self.engine == 'onnxruntime' else 'torch'} {self.precision} on {self.device}"


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def gpu_may_be_present() -> bool:
    """A cheap guess that torch could see a GPU, so that CPU-only machines never import torch to ask."""
    if sys.platform == "darwin":
        import platform

        return platform.machine() == "arm64"  # Apple silicon: MPS
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists() or Path("/dev/dxg").exists()


def choose_runtime(setting: str = "auto", *, device: str = "auto", use_gpu: bool = True) -> RuntimeChoice:
    """Pick the engine: a GPU through torch when there is one, else ONNX Runtime on the CPU, else torch.

    Args:
        setting: the ``runtime`` setting: ``"auto"``, ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (opt-in).
        device: ``"auto"`` or an explicit ``"cpu"``, ``"cuda"``, ``"mps"``.
        use_gpu: the user's setting; False keeps the model on the CPU.

    Only a machine that may have a GPU (:func:`gpu_may_be_present`) imports torch here.
    """
    from photoembed.errors import KnownError

    if setting not in RUNTIME_SETTINGS:
        raise KnownError(f"Unknown runtime {setting!r}; use one of {', '.join(RUNTIME_SETTINGS)}")
    if device in ("cuda", "mps") or (device == "auto" and use_gpu and gpu_may_be_present()):
        from photoembed.ml.runtime import choose_device

        choice = choose_device(device, use_gpu=use_gpu)
        if choice.device != "cpu":
            return RuntimeChoice("torch", choice.device, "fp16" if choice.half else "fp32", "a GPU is present")
    if setting == "torch":
        return RuntimeChoice("torch", "cpu", "fp32", "the runtime setting asks for torch")
    if not onnxruntime_available():
        return RuntimeChoice("torch", "cpu", "fp32", "onnxruntime is not installed")
    if setting == "onnx-int8":
        return RuntimeChoice("onnxruntime", "cpu", "int8", "int8 opted in by the runtime setting")
    return RuntimeChoice("onnxruntime", "cpu", "fp32", "CPU: ONNX Runtime is the fastest exact engine")


def embedding_key(model: str, precision: str) -> str:
    """The name vectors are stored under: fp32 and fp16 of one model are interchangeable, int8 is not."""
    return model + INT8_SUFFIX if precision == "int8" else model


# -- start-up without a garbage-collection storm --------------------------------------------------------


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while heavy modules import and a model loads; then freeze what survived.

    Importing torch and open_clip allocates hundreds of thousands of long-lived objects, each allocation
    burst triggering a collection that scans them all again (20-35% of start-up CPU, issue 12).
    ``gc.freeze`` moves the survivors to the permanent generation, so later collections skip them too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
