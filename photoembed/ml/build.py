"""Building an open_clip model from a config and a weights file, quickly and for one or both towers.

open_clip's ``create_model`` first initialises every parameter randomly on the CPU and then overwrites them
with the checkpoint. For ViT-B-32 the random initialisation alone takes about 3 s on one core — longer than
reading the weights. Here the module tree is built on torch's ``meta`` device (no memory, no init), the
checkpoint is memory-mapped, and its tensors are assigned into the tree (``load_state_dict(assign=True)``).
The tower that is not wanted is removed before loading, so its weights are never read into memory.

The checkpoint handling mirrors ``open_clip.factory.load_checkpoint`` (``state_dict`` wrappers,
``module.`` prefixes, Apple MobileCLIP conversion, old text-tower layout, scalar/1-d ``logit_scale``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoembed.errors import KnownError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

TOWERS = ("image", "text")
# Keys of the contrastive head shared by both towers; kept whichever tower is loaded.
_HEAD_KEYS = ("logit_scale", "logit_bias")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model: which architecture, which weights, how to preprocess.

    Attributes:
        name: ``ARCH/TAG``.
        weights: the checkpoint file (.safetensors, or a torch.save state dict).
        model_cfg: open_clip's model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...).
        preprocess_cfg: open_clip's preprocess config (``size``, ``mean``, ``std``, ``interpolation``, ...).
        tokenizer_source: what ``open_clip.get_tokenizer`` takes: a built-in architecture name, or
            ``local-dir:PATH`` for a folder holding ``open_clip_config.json``.
    """

    name: str
    weights: Path
    model_cfg: dict[str, Any] = field(repr=False)
    preprocess_cfg: dict[str, Any] = field(repr=False)
    tokenizer_source: str

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])


def split_name(name: str) -> tuple[str, str]:
    """``"ARCH/TAG"`` -> ``("ARCH", "TAG")``.

    Raises:
        KnownError: when the name is not of that form.
    """
    arch, sep, tag = name.partition("/")
    if not sep or not arch or not tag or "/" in tag or arch in (".", "..") or tag in (".", ".."):
        raise KnownError(
            f"Model names look like ARCH/TAG (an open_clip architecture and pretrained tag, for example "
            f"ViT-B-32/laion2b_s34b_b79k), not {name!r}"
        )
    return arch, tag


def builtin_model_cfg(arch: str) -> dict[str, Any] | None:
    """open_clip's shipped config for an architecture, or None."""
    from open_clip import get_model_config

    cfg = get_model_config(arch)
    return copy.deepcopy(cfg) if cfg is not None else None


def pretrained_settings(arch: str, tag: str) -> dict[str, Any]:
    """open_clip's pretrained-tag entry (download location, preprocessing, quick_gelu), or ``{}``."""
    from open_clip.pretrained import get_pretrained_cfg

    return dict(get_pretrained_cfg(arch, tag))


def preprocess_cfg_for(model_cfg: dict[str, Any], *overlays: dict[str, Any]) -> dict[str, Any]:
    """open_clip's preprocess defaults, overlaid in order, with the size taken from the vision config.

    This is what ``create_model`` attaches to ``model.visual.preprocess_cfg``.
    """
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    merged: dict[str, Any] = merge_preprocess_dict(PreprocessCfg(), {})
    for overlay in overlays:
        merged = merge_preprocess_dict(merged, overlay)
    merged["size"] = model_cfg.get("vision_cfg", {}).get("image_size", merged["size"])
    return merged


def check_supported(name: str, model_cfg: dict[str, Any]) -> None:
    """Refuse configs photoembed cannot build offline.

    Raises:
        KnownError: for CoCa captioners and Hugging Face text towers (those need ``transformers`` and
            fetch their base config from the network).
    """
    if "multimodal_cfg" in model_cfg:
        raise KnownError(f"{name} is a CoCa captioning model; photoembed supports CLIP-style models only")
    if model_cfg.get("text_cfg", {}).get("hf_model_name"):
        raise KnownError(
            f"{name} uses a Hugging Face text tower, which photoembed cannot build offline; "
            "pick another model from `photoembed model list`"
        )
    if not all(key in model_cfg for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise KnownError(f"The config for {name} is not an open_clip model config (embed_dim, vision_cfg, text_cfg)")
    needs = unsupported_tokenizer(name, model_cfg)
    if needs:
        raise KnownError(
            f"{name} needs {needs}, which photoembed does not ship (it would need the transformers package "
            "and the model hub); pick another model from `photoembed model list`"
        )


def unsupported_tokenizer(name: str, model_cfg: dict[str, Any]) -> str | None:
    """What text tokenizer ``name`` needs that photoembed cannot run offline, or None.

    open_clip's own BPE tokenizer ships with it; Hugging Face tokenizers (SigLIP, SigLIP2, CLIPA's BERT,
    the ``-worldwide`` mT5, XLM-R, NLLB...) need ``transformers`` and their files from the hub, and
    ``get_tokenizer`` picks one for any ``hf_tokenizer_name`` and for architecture names containing "siglip".
    """
    text_cfg = model_cfg.get("text_cfg", {})
    hf_tokenizer = text_cfg.get("hf_tokenizer_name")
    if hf_tokenizer:
        return f"the Hugging Face tokenizer {hf_tokenizer}"
    if "siglip" in split_name(name)[0].lower():
        return "the SigLIP tokenizer from Hugging Face"
    return None


def load_model(spec: ModelSpec, *, towers: Iterable[str] = TOWERS, device: str = "cpu") -> torch.nn.Module:
    """Build the model for ``spec`` with the weights of the wanted towers, in eval mode, float32.

    Args:
        spec: what to build.
        towers: ``"image"`` and/or ``"text"``; the other tower is not kept (nor read from disk).
        device: where to put the model.

    Raises:
        KnownError: when the weights file cannot be read or does not fit the architecture.
    """
    wanted = _check_towers(towers)
    check_supported(spec.name, spec.model_cfg)
    model = _instantiate(spec.model_cfg, meta=True)
    keep = _drop_towers(model, wanted)
    state_dict = _read_checkpoint(spec.weights, model, keep)
    _check_keys(spec, model, state_dict)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise KnownError(_mismatch_message(spec, str(exc))) from exc
    if not _materialize_leftovers(model):
        # Something in the architecture keeps state outside the checkpoint that only its constructor
        # can compute; build it the slow way (random init, then copy the weights over).
        logger.info("Building %s with eager initialisation", spec.name)
        model = _instantiate(spec.model_cfg, meta=False)
        _drop_towers(model, wanted)
        model.load_state_dict(state_dict, strict=True)
    model = model.float().eval().requires_grad_(False)
    if "image" in wanted and spec.model_cfg.get("vision_cfg", {}).get("timm_model_name"):
        # MobileCLIP's MobileOne/RepVGG blocks train with parallel branches that fold into one convolution
        # for inference: same outputs (to ~1e-7), fewer operations.
        from timm.utils.model import reparameterize_model

        model.visual = reparameterize_model(model.get_submodule("visual"), inplace=True)
    return model.to(device)


def load_tokenizer(spec: ModelSpec) -> Callable[[list[str]], torch.Tensor]:
    """open_clip's tokenizer for the model (the BPE vocabulary ships with open_clip: no network)."""
    from open_clip import get_tokenizer

    tokenizer: Callable[[list[str]], torch.Tensor] = get_tokenizer(spec.tokenizer_source)
    return tokenizer


def _check_towers(towers: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(towers)
    if not wanted or not wanted <= set(TOWERS):
        raise ValueError(f"towers must be a non-empty subset of {TOWERS}, not {tuple(towers)}")
    return wanted


def _instantiate(model_cfg: dict[str, Any], *, meta: bool) -> torch.nn.Module:
    import torch
    from open_clip.model import CLIP, CustomTextCLIP

    cfg = copy.deepcopy(model_cfg)
    vision_cfg = cfg.get("vision_cfg", {})
    if vision_cfg.get("timm_model_name"):
        # Never let timm fetch ImageNet weights: the checkpoint supplies every tower weight.
        vision_cfg["timm_model_pretrained"] = False
    model_class = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
    with torch.device("meta") if meta else contextlib.nullcontext():
        model: torch.nn.Module = model_class(**cfg)
    return model


def _drop_towers(model: torch.nn.Module, wanted: frozenset[str]) -> Callable[[str], bool]:
    """Remove the unwanted tower from ``model``; return the filter for checkpoint keys to keep."""
    if wanted == set(TOWERS):
        return lambda key: True
    if wanted == {"text"}:
        del model.visual
        return lambda key: not key.startswith("visual.")
    # Image only. CLIP keeps its text tower as top-level attributes, CustomTextCLIP under .text: remove
    # every top-level member that is neither the visual tower nor the shared head.
    members = [*model._modules, *model._parameters, *model._buffers]
    for member in members:
        if member != "visual" and member not in _HEAD_KEYS:
            delattr(model, member)
    return lambda key: key.startswith("visual.") or key in _HEAD_KEYS


def _read_checkpoint(path: Path, model: torch.nn.Module, keep: Callable[[str], bool]) -> dict[str, Any]:
    """Read the state dict in ``path`` (memory-mapped), in open_clip's layout, filtered by ``keep``."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    if not path.is_file():
        raise KnownError(f"Weights file {path} is missing")
    try:
        loaded = _read_safetensors(path, keep) if path.suffix == ".safetensors" else _read_torch(path)
        state_dict = {str(k).removeprefix("module."): v for k, v in _tensor_dict(loaded).items()}
        state_dict = convert_state_dict(model, state_dict)
    except KnownError:
        raise
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError):
            # torch's own message suggests weights_only=False, which would run code from the file: no.
            reason = "it is not a saved state dict of tensors"
        else:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnownError(f"{path} is not a weights file photoembed can read ({reason[:200]})") from exc
    old_text_layout = "positional_embedding" in state_dict and "text.positional_embedding" not in state_dict
    if old_text_layout and not hasattr(model, "positional_embedding") and hasattr(model, "text"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    state_dict.pop("text.transformer.embeddings.position_ids", None)
    state_dict = {k: v for k, v in state_dict.items() if keep(k)}
    for key in _HEAD_KEYS:
        param = getattr(model, key, None)
        if param is None:
            state_dict.pop(key, None)
        elif key in state_dict and state_dict[key].ndim != param.ndim:
            state_dict[key] = state_dict[key].reshape(param.shape)
        elif key == "logit_bias" and key not in state_dict and "logit_scale" in state_dict:
            import torch

            state_dict[key] = torch.zeros_like(state_dict["logit_scale"]).reshape(param.shape)
    return state_dict


def _read_torch(path: Path) -> Any:
    import torch

    # weights_only: a weights file from the internet must not be able to run code when loaded.
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Files from torch.save's legacy (pre-1.6, non-zip) format cannot be memory-mapped.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    return checkpoint


def _tensor_dict(loaded: Any) -> dict[Any, Any]:
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError("no tensors in it")
    return loaded


def _read_safetensors(path: Path, keep: Callable[[str], bool]) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        # Only the wanted tower's tensors are read. Keys are filtered before open_clip's conversions,
        # which only concern .pt checkpoints in other layouts (safetensors files are open_clip's own).
        names = handle.keys()  # a safe_open handle is not iterable
        return {key: handle.get_tensor(key) for key in names if keep(key.removeprefix("module."))}


def _check_keys(spec: ModelSpec, model: torch.nn.Module, state_dict: dict[str, Any]) -> None:
    expected = set(model.state_dict().keys())
    present = set(state_dict)
    missing = sorted(expected - present)
    unexpected = sorted(present - expected)
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        raise KnownError(
            f"{spec.weights} does not hold weights for the {spec.name.partition('/')[0]} architecture: "
            f"{'; '.join(details)}"
        )


def _mismatch_message(spec: ModelSpec, error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if "size mismatch" in line]
    first = lines[0] if lines else error.strip().splitlines()[0]
    return f"{spec.weights} does not hold weights for the {spec.name.partition('/')[0]} architecture ({first[:200]})"


def _materialize_leftovers(model: torch.nn.Module) -> bool:
    """Compute the non-persistent buffers a meta-built model still lacks; False if one is unknown."""
    import torch

    for name, buffer in list(model.named_buffers()):
        if not buffer.is_meta:
            continue
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if leaf == "attn_mask" and buffer.ndim == 2 and buffer.shape[0] == buffer.shape[1]:
            # open_clip's causal text mask (TextTransformer.build_causal_mask): -inf above the diagonal.
            mask = torch.full(tuple(buffer.shape), float("-inf")).triu_(1)
            owner.register_buffer(leaf, mask, persistent=False)
        else:
            return False
    return not any(p.is_meta for p in model.parameters())


# ------------------------------------------------------------------------------- identifying a file


def checkpoint_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The tensor shapes of a weights file (``module.`` prefixes dropped) and its safetensors metadata.

    Nothing but the header is read for safetensors; a torch file is memory-mapped.

    Raises:
        KnownError: the file is not a weights file photoembed can read.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as handle:  # header only
                metadata = dict(handle.metadata() or {})
                shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        else:
            metadata = {}
            shapes = {str(k): tuple(v.shape) for k, v in _tensor_dict(_read_torch(path)).items() if hasattr(v, "shape")}
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnownError(f"{path} is not a weights file photoembed can read ({reason[:200]})") from exc
    return {key.removeprefix("module."): shape for key, shape in shapes.items()}, metadata


def model_shapes(model_cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of an architecture, from a module tree built on the meta device (no memory)."""
    model = _instantiate(model_cfg, meta=True)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def identify_architectures(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """The open_clip architectures (shipped configs) whose state dict has exactly these keys and shapes.

    Architectures photoembed cannot run (Hugging Face tokenizers or text towers, CoCa) are left out.
    Several names can fit one file (``ViT-B-32`` and ``ViT-B-32-quickgelu`` differ in activation only).
    """
    from open_clip import list_models

    shapes = {k: v for k, v in shapes.items() if k != "text.transformer.embeddings.position_ids"}
    vocab = _first_shape(shapes, "token_embedding.weight", "text.token_embedding.weight")
    found = []
    for arch in list_models():
        cfg = builtin_model_cfg(arch)
        if cfg is None or "multimodal_cfg" in cfg:
            continue
        text_cfg = cfg.get("text_cfg", {})
        if text_cfg.get("hf_model_name") or unsupported_tokenizer_of(arch, cfg):
            continue
        if vocab is not None and (text_cfg.get("vocab_size", 49408), text_cfg.get("width", 512)) != vocab:
            continue
        if not _plausible(cfg, shapes):
            continue
        try:
            expected = model_shapes(cfg)
        except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, ImportError, AssertionError) as exc:
            # A config this open_clip/timm cannot build is simply not a candidate.
            logger.debug("cannot build %s on the meta device: %s", arch, exc)
            continue
        if expected == shapes:
            found.append(arch)
    return found


def _plausible(cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> bool:
    """Cheap checks against the config (layer counts, widths, patch size) before building a model."""
    text_cfg, vision_cfg = cfg.get("text_cfg", {}), cfg.get("vision_cfg", {})
    text_layers = _block_count(shapes, ("transformer.resblocks.", "text.transformer.resblocks."))
    if text_layers and text_layers != text_cfg.get("layers", 12):
        return False
    projection = _first_shape(shapes, "text_projection", "text.text_projection")
    if projection is not None and projection[-1] != cfg.get("embed_dim"):
        return False
    if vision_cfg.get("timm_model_name") or isinstance(vision_cfg.get("layers"), list | tuple):
        return "visual.transformer.resblocks.0.ln_1.weight" not in shapes
    vision_layers = _block_count(shapes, ("visual.transformer.resblocks.",))
    conv = shapes.get("visual.conv1.weight")
    if conv is None or vision_layers != vision_cfg.get("layers", 12):
        return False
    patch = vision_cfg.get("patch_size", 16)
    if conv[0] != vision_cfg.get("width", 768) or conv[2:] != (patch, patch):
        return False
    positions = shapes.get("visual.positional_embedding")
    size = vision_cfg.get("image_size", 224)
    grid = (size // patch) ** 2 if isinstance(size, int) else (size[0] // patch) * (size[-1] // patch)
    return positions is None or positions[0] in (grid, grid + 1)


def _block_count(shapes: dict[str, tuple[int, ...]], prefixes: tuple[str, ...]) -> int:
    indices = set()
    for key in shapes:
        for prefix in prefixes:
            if key.startswith(prefix):
                head = key[len(prefix) :].split(".", 1)[0]
                if head.isdigit():
                    indices.add(int(head))
    return len(indices)


def _first_shape(shapes: dict[str, tuple[int, ...]], *keys: str) -> tuple[int, ...] | None:
    for key in keys:
        if key in shapes:
            return shapes[key]
    return None


def unsupported_tokenizer_of(arch: str, model_cfg: dict[str, Any]) -> str | None:
    """:func:`unsupported_tokenizer` for a bare architecture name."""
    return unsupported_tokenizer(f"{arch}/any", model_cfg)
