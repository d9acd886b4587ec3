"""Exporting a model's towers to ONNX once, checking them against torch, and finding the export again.

The model is still built by open_clip on torch (weights, architectures, the reference). On first use on a
CPU (or at ``photoembed model install``) each tower is exported to ONNX with a dynamic batch (and, for the
text tower, a dynamic length: queries are cut after their last end-of-text token), then run through ONNX
Runtime on a few inputs and compared with torch. A tower whose cosine to torch is below
:data:`VERIFY_COSINE` on any input is refused, and that tower stays on torch (the refusal is recorded, so
the export is not retried until the weights change).

Layout, in the model cache (``ModelStore.onnx_dir``)::

    <cache>/models/onnx/<slug>/manifest.json     model, weights fingerprint, versions, verification
    <cache>/models/onnx/<slug>/image.onnx        image tower, float32, input "pixels" [n, 3, H, W]
    <cache>/models/onnx/<slug>/text.onnx         text tower, float32, input "tokens" int64 [n, L]
    <cache>/models/onnx/<slug>/image-int8.onnx   the opt-in dynamically quantised image tower
    <cache>/models/onnx/<slug>/bpe_simple_vocab_16e6.txt.gz   the tokenizer's vocabulary (torch-free path)

The manifest carries everything the torch-free path needs (embedding size, preprocessing, tokenizer), so a
text query with an export needs neither torch nor open_clip. An export belongs to one weights file: its
manifest records the file's path, size and modification time, and an export for other weights is ignored.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoembed.config import atomic_write_text
from photoembed.ml.engine import OrtEngine, normalize, pool_positions_numpy
from photoembed.ml.models import move_into_place
from photoembed.ml.tokenizer import CLEAN_TYPES, VOCAB_FILE, ClipBpeTokenizer

if TYPE_CHECKING:
    import torch

    from photoembed.ml.build import ModelSpec

logger = logging.getLogger(__name__)

EXPORT_FORMAT = 1
MANIFEST = "manifest.json"
VERIFY_COSINE = 0.9999
TOWER_FILES = {"image": "image.onnx", "text": "text.onnx"}
INT8_FILE = "image-int8.onnx"
# Queries the tokenizer and the text tower are checked on: plain, non-ASCII, emoji, markup, over-long.
VERIFY_TEXTS = (
    "a photo of a dog",
    "Sunset over the sea, with friends at the beach!",
    "Crème brûlée in Zürich — ünïcödé, 東京タワー, Москва",
    "🎉🐶 birthday party 🎂 with emoji",
    "&amp; HTML &lt;b&gt;escaped&lt;/b&gt; text's can't we'll",
    "mountain " * 100,
)

Exporter = Callable[["torch.nn.Module", tuple[Any, ...], Path, dict[str, Any]], None]


@dataclass(frozen=True)
class OnnxExport:
    """A verified export of one model, as read from its manifest (no torch, no open_clip needed)."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["model"])

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        return dict(self.manifest["preprocess_cfg"])

    def tower(self, tower: str) -> dict[str, Any] | None:
        """The tower's record when it was exported and passed verification, else None."""
        record = self.manifest.get("towers", {}).get(tower)
        if not isinstance(record, dict) or not record.get("verified"):
            return None
        if not (self.folder / str(record["file"])).is_file():
            return None
        return record

    def refusal(self, tower: str) -> str | None:
        record = self.manifest.get("towers", {}).get(tower)
        if isinstance(record, dict) and not record.get("verified"):
            return str(record.get("reason", "refused"))
        return None

    def file(self, tower: str, precision: str = "fp32") -> Path | None:
        record = self.tower(tower)
        if record is None:
            return None
        if precision == "int8":
            int8 = self.manifest.get("int8") or {}
            path = self.folder / str(int8.get("file", INT8_FILE))
            return path if tower == "image" and path.is_file() else None
        return self.folder / str(record["file"])

    def tokenizer(self) -> ClipBpeTokenizer:
        record = self.tower("text")
        assert record is not None
        tok = record["tokenizer"]
        return ClipBpeTokenizer(self.folder / VOCAB_FILE, context_length=int(tok["context_length"]), clean=tok["clean"])


def fingerprint(weights: Path, digest: str | None = None) -> dict[str, Any]:
    """Which weights an export was made from: their sha256 when the store recorded one at install, else
    the file's path, size and modification time (a stat: nothing is read)."""
    stat = weights.stat()
    if digest:
        return {"sha256": digest, "size": stat.st_size}
    return {"weights": str(weights.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def find_export(folder: Path, name: str, weights: Path | None, digest: str | None = None) -> OnnxExport | None:
    """The export of ``name`` in ``folder`` when it was made from these weights; None otherwise. Torch-free."""
    if weights is None:
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        current = fingerprint(weights, digest)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT or manifest.get("model") != name:
        return None
    if manifest.get("source") != current:
        logger.info("The ONNX export of %s was made from other weights; it will be redone", name)
        return None
    return OnnxExport(folder, manifest)


def export_model(
    spec: ModelSpec,
    folder: Path,
    *,
    model: torch.nn.Module | None = None,
    digest: str | None = None,
    exporter: Exporter | None = None,
) -> OnnxExport:
    """Export both towers of ``spec`` into ``folder`` (replacing what is there), verified against torch.

    Args:
        spec: the model.
        folder: the export folder (``ModelStore.onnx_dir(name)``).
        model: the open_clip model with both towers, float32 on the CPU, when already built.
        digest: the weights' sha256 when the store knows it (:meth:`ModelStore.weights_digest`).
        exporter: writes one tower to an ONNX file (default: torch's dynamo exporter). A seam for tests.

    Returns:
        The export; a tower that failed to export or to verify is recorded as refused.
    """
    import onnxruntime
    import torch

    from photoembed.ml.build import load_model

    exporter = exporter or export_with_dynamo
    started = time.perf_counter()
    if model is None:
        model = load_model(spec, device="cpu")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{folder.name}-", dir=folder.parent))
    try:
        towers = {
            "image": _export_image(spec, model, staging, exporter),
            "text": _export_text(spec, model, staging, exporter),
        }
        manifest = {
            "format": EXPORT_FORMAT,
            "model": spec.name,
            # What produced these files: fp32 exports of one model are interchangeable, but say so anyway.
            "tag": f"{spec.name} onnx fp32 (torch {torch.__version__}, onnxruntime {onnxruntime.__version__})",
            "source": fingerprint(spec.weights, digest),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "embed_dim": spec.embed_dim,
            "preprocess_cfg": spec.preprocess_cfg,
            "towers": towers,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        move_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for tower, record in towers.items():
        if record.get("verified"):
            logger.info("Exported the %s tower of %s to ONNX (cosine to torch >= %.6f)", tower, spec.name,
                        record["min_cosine"])
        else:
            logger.warning("ONNX export of the %s tower of %s refused: %s", tower, spec.name, record["reason"])
    logger.info("ONNX export of %s took %.1f s", spec.name, time.perf_counter() - started)
    return OnnxExport(folder, json.loads((folder / MANIFEST).read_text(encoding="utf-8")))


def export_image_tower(spec: ModelSpec, model: torch.nn.Module, folder: Path) -> OnnxExport:
    """Export and verify the image tower of ``model`` alone into ``folder`` (made if needed), as
    :func:`export_model` does, for a model that no installed weights file backs (benchmarks' random
    weights). The manifest records the image tower only; :func:`find_export` never matches it."""
    folder.mkdir(parents=True, exist_ok=True)
    record = _export_image(spec, model, folder, export_with_dynamo)
    manifest = {
        "format": EXPORT_FORMAT,
        "model": spec.name,
        "source": {"weights": "in memory"},
        "embed_dim": spec.embed_dim,
        "preprocess_cfg": spec.preprocess_cfg,
        "towers": {"image": record},
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
    return OnnxExport(folder, manifest)


def export_with_dynamo(module: torch.nn.Module, example: tuple[Any, ...], path: Path, dynamic: dict[str, Any]) -> None:
    """torch's dynamo ONNX exporter (torch.export + onnxscript): it keeps the text length dynamic, which
    the legacy TorchScript exporter bakes into nn.MultiheadAttention's reshapes."""
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            dynamic_shapes=dynamic,
            input_names=list(dynamic),
            output_names=["features"],
            dynamo=True,
            optimize=True,
            external_data=False,
        )
        assert program is not None
        program.save(str(path))


def quantize_int8(export: OnnxExport) -> OnnxExport:
    """The opt-in int8 image tower (ONNX Runtime dynamic quantisation), with its cosine to fp32 recorded.

    Torch-free. Dynamic quantisation stores the weights of MatMul/Gemm as int8 and quantises activations
    per batch; trained ViTs have activation outliers that random weights lack, so this is never the default.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = export.file("image")
    if source is None:
        raise RuntimeError(f"{export.name} has no verified ONNX image tower to quantise")
    target = export.folder / INT8_FILE
    tmp = export.folder / f".{INT8_FILE}.{os.getpid()}.tmp"
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    pixels = _image_inputs(export.preprocess_cfg)
    fp32 = OrtEngine(source, threads=1)
    int8 = OrtEngine(tmp, threads=1, precision="int8")
    fp32.load()
    int8.load()
    cosine = _min_cosine(fp32.predict(pixels), int8.predict(pixels))
    os.replace(tmp, target)
    manifest = dict(export.manifest)
    manifest["int8"] = {"file": INT8_FILE, "min_cosine_to_fp32": cosine, "method": "quantize_dynamic QInt8 MatMul/Gemm"}
    atomic_write_text(export.folder / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
    logger.info("Quantised %s to int8 in %.1f s (cosine to fp32 >= %.4f on random pixels)", export.name,
                time.perf_counter() - started, cosine)
    return OnnxExport(export.folder, manifest)


# -- the towers ------------------------------------------------------------------------------------------


def _export_image(spec: ModelSpec, model: torch.nn.Module, folder: Path, exporter: Exporter) -> dict[str, Any]:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            features: torch.Tensor = self.clip.encode_image(pixels)
            return features

    pixels = _image_inputs(spec.preprocess_cfg)
    path = folder / TOWER_FILES["image"]
    try:
        exporter(ImageTower(model), (torch.from_numpy(pixels[:2]),), path, {"pixels": {0: torch.export.Dim("batch")}})
        with torch.inference_mode():
            reference = model.encode_image(torch.from_numpy(pixels)).numpy()  # type: ignore[operator]
        return _verify(path, pixels, reference)
    except Exception as exc:  # an architecture the exporter cannot handle: that tower stays on torch
        logger.debug("Image tower export failed", exc_info=True)
        return {"verified": False, "reason": f"export failed: {type(exc).__name__}: {str(exc)[:300]}"}


def _export_text(spec: ModelSpec, model: torch.nn.Module, folder: Path, exporter: Exporter) -> dict[str, Any]:
    import torch

    from photoembed.ml.engine import _text_features, supports_trim, text_pool_positions

    if not supports_trim(model):
        return {"verified": False, "reason": "the text tower is not open_clip's own transformer with eos pooling"}
    tokenizer_record = _tokenizer_record(spec, folder)
    if "reason" in tokenizer_record:
        return {"verified": False, "reason": tokenizer_record["reason"]}
    clip: Any = model

    class TextTower(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return _text_features(self.clip, tokens, text_pool_positions(self.clip, tokens))

    tokenizer = ClipBpeTokenizer(
        folder / VOCAB_FILE, context_length=tokenizer_record["context_length"], clean=tokenizer_record["clean"]
    )
    tokens = tokenizer(list(VERIFY_TEXTS))
    pool = "argmax" if clip.text_pool_type == "argmax" else "eos"
    eos_id = getattr(clip, "text_eos_id", None)
    path = folder / TOWER_FILES["text"]
    try:
        example = torch.from_numpy(tokens[:2, :12].copy())
        example[:, 11] = tokenizer.eot_token_id  # a well-formed query of 12 tokens
        context = tokenizer.context_length
        length = torch.export.Dim("length", min=2, max=context)
        exporter(TextTower(model), (example,), path, {"tokens": {0: torch.export.Dim("batch"), 1: length}})
        with torch.inference_mode():
            reference = clip.encode_text(torch.from_numpy(tokens)).numpy()
        record = _verify_text(path, tokens, reference, pool, eos_id)
    except Exception as exc:
        logger.debug("Text tower export failed", exc_info=True)
        return {"verified": False, "reason": f"export failed: {type(exc).__name__}: {str(exc)[:300]}"}
    record["pool"] = pool
    record["eos_id"] = eos_id
    record["tokenizer"] = tokenizer_record
    return record


def _tokenizer_record(spec: ModelSpec, folder: Path) -> dict[str, Any]:
    """Copy open_clip's vocabulary next to the export and check the torch-free tokenizer against open_clip's."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from photoembed.ml.build import load_tokenizer

    reference: Any = load_tokenizer(spec)
    if not isinstance(reference, SimpleTokenizer) or reference.reduction_fn is not None:
        return {"reason": f"the tokenizer is {type(reference).__name__}, not CLIP's plain BPE tokenizer"}
    if len(reference.all_special_ids) != 2:
        return {"reason": "the tokenizer has additional special tokens"}
    clean = next((kind for kind in CLEAN_TYPES if reference.clean_fn.__name__ == f"_clean_{kind}"), None)
    if clean is None:
        return {"reason": f"unknown tokenizer cleaning {reference.clean_fn.__name__}"}
    shutil.copyfile(default_bpe(), folder / VOCAB_FILE)
    ours = ClipBpeTokenizer(folder / VOCAB_FILE, context_length=int(reference.context_length), clean=clean)
    if not np.array_equal(ours(list(VERIFY_TEXTS)), reference(list(VERIFY_TEXTS)).numpy()):
        return {"reason": "the torch-free tokenizer does not match open_clip's for this model"}
    return {"kind": "clip-bpe", "vocab": VOCAB_FILE, "context_length": int(reference.context_length), "clean": clean}


def _verify(path: Path, inputs: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    engine = OrtEngine(path, threads=1)
    engine.load()
    cosine = _min_cosine(engine.predict(inputs), reference)
    return _verdict(path, cosine)


def _verify_text(
    path: Path, tokens: np.ndarray, reference: np.ndarray, pool: str, eos_id: int | None
) -> dict[str, Any]:
    engine = OrtEngine(path, threads=1)
    engine.load()
    rows = []
    for row in range(len(tokens)):  # each query cut to its own length, as queries run
        one = tokens[row : row + 1]
        length = int(pool_positions_numpy(one, pool, eos_id).max()) + 1
        rows.append(engine.predict(np.ascontiguousarray(one[:, :length])))
    batched_length = int(pool_positions_numpy(tokens, pool, eos_id).max()) + 1
    batched = engine.predict(np.ascontiguousarray(tokens[:, :batched_length]))
    cosine = min(_min_cosine(np.concatenate(rows), reference), _min_cosine(batched, reference))
    return _verdict(path, cosine)


def _verdict(path: Path, cosine: float) -> dict[str, Any]:
    if cosine >= VERIFY_COSINE:
        return {"verified": True, "file": path.name, "min_cosine": cosine}
    path.unlink(missing_ok=True)
    return {
        "verified": False,
        "min_cosine": cosine,
        "reason": f"ONNX Runtime's output differs from torch's (cosine {cosine:.6f} < {VERIFY_COSINE})",
    }


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return -1.0
    return float(np.min(np.sum(normalize(a) * normalize(b), axis=-1)))


def _image_inputs(preprocess_cfg: dict[str, Any]) -> np.ndarray:
    """Three model inputs: normalised random pixels (what the encoder's preprocessing produces)."""
    size = preprocess_cfg["size"]
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    rng = np.random.default_rng(12)
    raw = rng.random((3, 3, height, width), dtype=np.float32)
    mean = np.asarray(preprocess_cfg["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess_cfg["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((raw - mean) / std)

