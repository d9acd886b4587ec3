"""Which CLIP models photoembed knows, and where their weights are: installed, downloaded or missing.

A model is named ``ARCH/TAG``: an open_clip architecture and an open_clip pretrained tag (for example
``ViT-B-32/laion2b_s34b_b79k``). Weights arrive in one of two ways:

* ``download``: through open_clip's pretrained registry, from the Hugging Face Hub, into the download cache
  (needs internet once);
* ``install``: from a local file (an offline machine, a file copied from elsewhere, or an architecture
  open_clip does not ship, described by an open_clip model-config JSON). The weights are copied into the
  models folder with a small ``manifest.json``.

Layout::

    models_dir/<slug>/manifest.json          name, weights file, size, sha256, source
    models_dir/<slug>/weights.safetensors|pt
    models_dir/<slug>/open_clip_config.json  only for custom architectures ({"model_cfg", "preprocess_cfg"})
    downloads_dir/huggingface/...            the Hugging Face cache
    downloads_dir/records/<slug>.json        name -> downloaded file

A custom architecture's config is not registered in open_clip's process-wide config registry
(``add_model_config``): photoembed builds the model from the stored config itself, and the tokenizer reads
it through open_clip's ``local-dir:`` schema. So two libraries in one process cannot disturb each other.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photoembed.config import DEFAULT_MODEL, atomic_write_text
from photoembed.errors import Cancelled, KnownError, ModelUnavailableError
from photoembed.ml.build import (
    ModelSpec,
    builtin_model_cfg,
    check_supported,
    load_model,
    preprocess_cfg_for,
    pretrained_settings,
    split_name,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CONFIG_FILE = "open_clip_config.json"  # the name open_clip's local-dir: schema reads
MANIFEST_FORMAT = 1
_COPY_CHUNK = 4 * 1024 * 1024

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class KnownModel:
    """A model photoembed suggests, with one line on when to pick it."""

    name: str
    note: str


# Tags checked against open_clip 3.3's pretrained registry (a test asserts each one resolves). Accuracies are
# the published ImageNet zero-shot figures; CPU costs were measured with `photoembed bench model` on
# random-init copies of each architecture (2 shared cores, batch 16): ViT-B-32 4.1 images/s,
# MobileCLIP2-S0 3.7, ViT-B-16 0.5.
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        DEFAULT_MODEL,
        "default: LAION-2B ViT-B/32, 66.6% ImageNet zero-shot; the fastest on CPUs of these; 605 MB",
    ),
    KnownModel(
        "MobileCLIP2-S0/dfndr2b",
        "Apple MobileCLIP2-S0, 71.5% ImageNet zero-shot at about the CPU cost of ViT-B-32; 256 px input; 300 MB",
    ),
    KnownModel(
        "ViT-B-16/datacomp_xl_s13b_b90k",
        "better: DataComp-XL ViT-B/16, 73.5% ImageNet zero-shot, 4-8x the CPU time of ViT-B-32; 600 MB",
    ),
)


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``photoembed model list``.

    Attributes:
        name: ``ARCH/TAG``.
        installed: weights are on this machine (installed from a file or downloaded).
        weights: the weights file, when installed.
        size: its size in bytes, when installed.
        note: what the model is for (empty for models photoembed does not curate).
        default: the model photoembed uses unless told otherwise.
        source: ``"installed"`` (from a local file), ``"downloaded"`` or None.
    """

    name: str
    installed: bool
    weights: Path | None
    size: int | None
    note: str
    default: bool
    source: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "installed": self.installed,
            "weights": str(self.weights) if self.weights else None,
            "size": self.size,
            "note": self.note,
            "default": self.default,
            "source": self.source,
        }


def slug(name: str) -> str:
    """A folder/file name for a model name (``ViT-B-32/laion2b`` -> ``ViT-B-32--laion2b``)."""
    arch, tag = split_name(name)
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{arch}--{tag}")


def unavailable_message(name: str) -> str:
    """The one sentence shown when a model has no weights."""
    return (
        f"No weights for model {name}. Run `photoembed model download {name}` (needs internet once) or "
        f"`photoembed model install FILE --model {name}` with a weights file copied from another machine."
    )


class ModelStore:
    """The installed and downloaded model weights of one photoembed home.

    Reading (``list``, ``weights_for``, ``spec``) is cheap and imports nothing heavy except where a model
    config has to be resolved. ``install`` and ``download`` write atomically: a model counts as present
    only once its manifest or download record is in place.

    Args:
        models_dir: where installed weights are copied (data folder: not a cache, never evicted).
        downloads_dir: the download cache.
    """

    def __init__(self, models_dir: Path, downloads_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self.downloads_dir = Path(downloads_dir)

    # -- reading -------------------------------------------------------------------------------------

    def list(self) -> builtins.list[ModelStatus]:
        """The curated models, then every other installed or downloaded one, with their state."""
        notes = {model.name: model.note for model in KNOWN_MODELS}
        present = self._present()
        names = [model.name for model in KNOWN_MODELS]
        names += sorted(name for name in present if name not in notes)
        rows = []
        for name in names:
            found = present.get(name)
            rows.append(
                ModelStatus(
                    name=name,
                    installed=found is not None,
                    weights=found[0] if found else None,
                    size=_file_size(found[0]) if found else None,
                    note=notes.get(name, ""),
                    default=name == DEFAULT_MODEL,
                    source=found[1] if found else None,
                )
            )
        return rows

    def weights_for(self, name: str) -> Path | None:
        """The weights file for ``name``, installed ones first; None when there is none."""
        installed = self._installed_manifest(name)
        if installed is not None:
            return installed[0] / str(installed[1]["weights"])
        return self._downloaded(name)

    def spec(self, name: str) -> ModelSpec:
        """Everything the encoder needs to build ``name``.

        Raises:
            ModelUnavailableError: when no weights are installed or downloaded for it.
            KnownError: when the name is malformed or its architecture unknown.
        """
        split_name(name)
        installed = self._installed_manifest(name)
        if installed is not None:
            folder, manifest = installed
            config = folder / str(manifest["config"]) if manifest.get("config") else None
            return _make_spec(name, folder / str(manifest["weights"]), config)
        downloaded = self._downloaded(name)
        if downloaded is None:
            raise ModelUnavailableError(unavailable_message(name))
        return _make_spec(name, downloaded, None)

    def weights_digest(self, name: str) -> str | None:
        """The sha256 recorded when ``name`` was installed from a file; None for downloads. Reads no weights."""
        installed = self._installed_manifest(name)
        digest = installed[1].get("sha256") if installed is not None else None
        return str(digest) if digest else None

    def onnx_dir(self, name: str) -> Path:
        """Where the ONNX export of ``name`` lives (photoembed.ml.onnx_export): the cache, rebuildable."""
        return self.downloads_dir / "onnx" / slug(name)

    # -- installing from a file ----------------------------------------------------------------------

    def install(self, file: Path, *, name: str | None = None, config: Path | None = None) -> str:
        """Copy a weights file into the store, after checking that it loads.

        Args:
            file: a state dict (``.safetensors``, or ``.pt``/``.bin``/``.pth`` from ``torch.save``).
            name: ``ARCH/TAG``. Defaults to the name in a photoembed ``manifest.json`` beside the file, else
                to ``ARCH/custom-<sha256[:12]>`` when ``config`` is given (ARCH from the config's file name),
                else to what :func:`identify` reads from the file (sidecar config, metadata, shapes).
            config: an open_clip model config JSON, for architectures open_clip does not ship. Either the
                bare model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) or the Hub's
                ``open_clip_config.json`` (``model_cfg`` plus ``preprocess_cfg``).

        Returns:
            The installed model's name.

        Raises:
            AmbiguousModelError: no name given and several architectures fit the file (``candidates``).
            KnownError: when the file is missing, unreadable, or not weights of that architecture.
        """
        file = Path(file).expanduser()
        if not file.is_file():
            raise KnownError(f"No weights file at {file}")
        if name is None:
            name, config = _from_sibling_manifest(file, config)
        if name is None and config is None:
            found = identify(file)
            name, config = found.name, found.config
        config_doc = _read_config(config) if config is not None else None
        provisional = name or f"{_arch_from_config_path(config)}/custom"  # type: ignore[arg-type]
        _validate(provisional, file, config_doc)

        self.models_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.models_dir))
        try:
            weights_name = "weights.safetensors" if file.suffix == ".safetensors" else "weights.pt"
            digest = _copy_hashed(file, staging / weights_name)
            if name is None:
                name = f"{_arch_from_config_path(config)}/custom-{digest[:12]}"  # type: ignore[arg-type]
            split_name(name)
            if config_doc is not None:
                atomic_write_text(staging / CONFIG_FILE, json.dumps(config_doc, indent=2) + "\n")
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "weights": weights_name,
                "config": CONFIG_FILE if config_doc is not None else None,
                "size": (staging / weights_name).stat().st_size,
                "sha256": digest,
                "source": str(file),
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
            move_into_place(staging, self.models_dir / slug(name))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("Installed %s from %s", name, file)
        return name

    # -- downloading ----------------------------------------------------------------------------------

    def download(
        self,
        name: str,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Fetch the weights of an open_clip pretrained tag (Hugging Face Hub) into the download cache.

        The file is checked against the hub's published sha256 (a damaged file is deleted), and an
        interrupted download resumes where it stopped on the next call (:mod:`photoembed.ml.download`).

        Args:
            name: ``ARCH/TAG`` with a TAG from open_clip's pretrained registry.
            progress: called with (bytes done, bytes total) as the download goes.
            cancel: set it to stop the download; :class:`Cancelled` is raised.

        Returns:
            The downloaded weights file.

        Raises:
            KnownError: for an unknown tag, a damaged download, or when the hub cannot be reached (one
                sentence naming the proxy or DNS failure; offline machines are told to use ``model install``).
            Cancelled: when ``cancel`` was set.
        """
        arch, tag = split_name(name)
        existing = self._downloaded(name)
        if existing is not None:
            size = _file_size(existing) or 0
            if progress is not None:
                progress(size, size)
            return existing
        settings = pretrained_settings(arch, tag)
        if not settings:
            raise KnownError(
                f"open_clip has no pretrained weights called {name}; `photoembed model list` shows the suggested models"
            )
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"Download of {name} cancelled")
        if settings.get("hf_hub"):
            path = self._download_from_hub(name, str(settings["hf_hub"]), progress, cancel)
        elif settings.get("url"):
            path = self._download_from_url(name, str(settings["url"]), progress, cancel)
        else:
            raise KnownError(f"open_clip lists no download location for {name}")
        self._record_download(name, path)
        if progress is not None:
            size = _file_size(path) or 0
            progress(size, size)
        return path

    def _download_from_hub(
        self,
        name: str,
        hf_hub: str,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> Path:
        import huggingface_hub.constants
        from huggingface_hub import try_to_load_from_cache
        from open_clip.constants import HF_WEIGHTS_NAME

        from photoembed.ml.download import NotOnServer, fetch

        # open_clip's convention (pretrained.download_pretrained): "org/repo/" means the default file,
        # "org/repo/file" a named one; a .safetensors twin is preferred when the repo has one.
        if hf_hub.endswith("/"):
            repo_id, filename = hf_hub[:-1], HF_WEIGHTS_NAME
        else:
            repo_id, filename = os.path.split(hf_hub)
        candidates = [*_safetensors_alternatives(filename), filename]
        for candidate in candidates:
            # A file an earlier photoembed fetched into the Hugging Face cache (looked up without network).
            cached = try_to_load_from_cache(repo_id, candidate, cache_dir=self.downloads_dir / "huggingface")
            if isinstance(cached, str) and Path(cached).is_file():
                return Path(cached)
        if _hub_offline_mode():
            raise KnownError(_offline_message(name, repo_id))
        endpoint = str(huggingface_hub.constants.ENDPOINT).rstrip("/")
        folder = self.downloads_dir / "files" / slug(name)
        for candidate in candidates:
            url = f"{endpoint}/{repo_id}/resolve/main/{urllib.parse.quote(candidate)}"
            try:
                return fetch(url, folder / candidate, what=name, progress=progress, cancel=cancel)
            except NotOnServer:
                logger.debug("%s: no %s in %s", name, candidate, repo_id)
        raise KnownError(f"Could not download {name}: {repo_id} holds none of {', '.join(candidates)}")

    def _download_from_url(
        self, name: str, url: str, progress: ProgressCallback | None, cancel: threading.Event | None
    ) -> Path:
        from photoembed.ml.download import fetch

        # open_clip's OpenAI URLs name the file's sha256 in their path (…/<sha256>/ViT-B-32.pt).
        parts = url.rstrip("/").split("/")
        expected = parts[-2] if len(parts) >= 2 and re.fullmatch(r"[0-9a-f]{64}", parts[-2]) else None
        target = self.downloads_dir / "files" / slug(name) / parts[-1]
        return fetch(url, target, what=name, progress=progress, cancel=cancel, expected_sha256=expected)

    # -- internals ------------------------------------------------------------------------------------

    def _record_download(self, name: str, path: Path) -> None:
        records = self.downloads_dir / "records"
        records.mkdir(parents=True, exist_ok=True)
        record = {"format": MANIFEST_FORMAT, "name": name, "weights": str(path)}
        atomic_write_text(records / f"{slug(name)}.json", json.dumps(record, indent=2) + "\n")

    def _downloaded(self, name: str) -> Path | None:
        record = _read_json(self.downloads_dir / "records" / f"{slug(name)}.json")
        if record is None or record.get("name") != name:
            return None
        path = Path(str(record.get("weights", "")))
        return path if path.is_file() else None

    def _installed_manifest(self, name: str) -> tuple[Path, dict[str, Any]] | None:
        folder = self.models_dir / slug(name)
        manifest = _read_json(folder / MANIFEST)
        if manifest is None or manifest.get("name") != name:
            return None
        if not (folder / str(manifest.get("weights", ""))).is_file():
            logger.warning("Installed model %s lost its weights file in %s", name, folder)
            return None
        return folder, manifest

    def _present(self) -> dict[str, tuple[Path, str]]:
        found: dict[str, tuple[Path, str]] = {}
        records = self.downloads_dir / "records"
        if records.is_dir():
            for record_file in sorted(records.glob("*.json")):
                record = _read_json(record_file)
                if record and isinstance(record.get("name"), str):
                    path = Path(str(record.get("weights", "")))
                    if path.is_file():
                        found[record["name"]] = (path, "downloaded")
        if self.models_dir.is_dir():
            for folder in sorted(self.models_dir.iterdir()):
                if folder.name.startswith("."):
                    continue  # staging and replaced folders of an interrupted install
                manifest = _read_json(folder / MANIFEST)
                if manifest and isinstance(manifest.get("name"), str):
                    weights = folder / str(manifest.get("weights", ""))
                    if weights.is_file():
                        found[manifest["name"]] = (weights, "installed")
        return found


class AmbiguousModelError(KnownError):
    """Several architectures fit a weights file; ``candidates`` are their ``ARCH/TAG`` names."""

    def __init__(self, message: str, candidates: builtins.list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


@dataclass(frozen=True)
class Identification:
    """What a weights file was found to hold: a name (``config`` for a custom architecture) and how."""

    name: str | None
    config: Path | None
    how: str


def identify(file: Path) -> Identification:
    """Tell which model a weights file holds, reading only the file (and a sidecar config).

    In order: an ``open_clip_config.json`` beside it (open_clip's own folder layout), the safetensors
    metadata (``open_clip_config`` JSON, or ``model_name``/``arch``), then the tensor shapes against every
    architecture open_clip ships that photoembed can run. A curated model's architecture gets its curated
    name; another architecture gets the tag ``local``.

    Raises:
        AmbiguousModelError: several architectures fit (``ViT-B-32`` and ``ViT-B-32-quickgelu`` have the
            same shapes) and none is curated.
        KnownError: nothing fits, or the file is not readable weights.
    """
    from photoembed.ml.build import checkpoint_shapes, identify_architectures

    sidecar = file.parent / CONFIG_FILE
    if sidecar.is_file():
        return Identification(name=None, config=sidecar, how=f"its {CONFIG_FILE}")
    shapes, metadata = checkpoint_shapes(file)
    arch_hint = metadata.get("model_name") or metadata.get("arch")
    embedded = metadata.get("open_clip_config")
    if embedded:
        # Named after the architecture, as install names custom architectures after their config file.
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", arch_hint or file.stem).strip(".-") or "custom"
        config = Path(tempfile.mkdtemp(prefix="photoembed-config-")) / f"{stem}.json"
        config.write_text(embedded, encoding="utf-8")
        return Identification(name=None, config=config, how="its safetensors metadata")
    candidates = [arch_hint] if arch_hint and builtin_model_cfg(arch_hint) else identify_architectures(shapes)
    curated = [model.name for model in KNOWN_MODELS if split_name(model.name)[0] in candidates]
    how = "its safetensors metadata" if arch_hint and candidates == [arch_hint] else "its tensor shapes"
    if len(curated) == 1:
        return Identification(name=curated[0], config=None, how=how)
    if len(candidates) == 1:
        return Identification(name=f"{candidates[0]}/local", config=None, how=how)
    if not candidates:
        raise KnownError(
            f"Cannot tell which model {file.name} holds: its tensors fit no open_clip architecture photoembed "
            f"supports; name it with --model ARCH/TAG (and --config JSON for a custom architecture)"
        )
    names = [f"{arch}/local" for arch in candidates]
    raise AmbiguousModelError(
        f"{file.name} fits several architectures ({', '.join(candidates)}); name it with --model ARCH/TAG",
        names,
    )


def spec_for(name: str, weights: Path, config: Path | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` with ``weights`` (benchmarks build random-weight copies with it)."""
    return _make_spec(name, weights, config)


def _make_spec(name: str, weights: Path, config: Path | None) -> ModelSpec:
    arch, tag = split_name(name)
    settings = pretrained_settings(arch, tag)
    if config is not None:
        doc = _read_config(config)
        model_cfg = doc["model_cfg"]
        overlays = [settings, doc.get("preprocess_cfg") or {}]
        tokenizer_source = f"local-dir:{config.parent}"
    else:
        found = builtin_model_cfg(arch)
        if found is None:
            raise KnownError(
                f"open_clip has no architecture called {arch}; install its weights with "
                f"`photoembed model install FILE --model {name} --config CONFIG.json`"
            )
        model_cfg = found
        overlays = [settings]
        tokenizer_source = arch
    if settings.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        # Tags trained with QuickGELU (OpenAI's) need it; open_clip only warns about the mismatch.
        model_cfg["quick_gelu"] = True
    check_supported(name, model_cfg)
    return ModelSpec(
        name=name,
        weights=weights,
        model_cfg=model_cfg,
        preprocess_cfg=preprocess_cfg_for(model_cfg, *overlays),
        tokenizer_source=tokenizer_source,
    )


def _validate(name: str, file: Path, config_doc: dict[str, Any] | None) -> None:
    """Load ``file`` into the architecture, exactly as the encoder will; KnownError if it does not fit."""
    with tempfile.TemporaryDirectory(prefix="photoembed-validate-") as scratch:
        config_path = None
        if config_doc is not None:
            config_path = Path(scratch) / CONFIG_FILE
            config_path.write_text(json.dumps(config_doc), encoding="utf-8")
        spec = _make_spec(name, file, config_path)
        model = load_model(spec, device="cpu")
        del model


def _read_config(path: Path) -> dict[str, Any]:
    """Read an open_clip config JSON into ``{"model_cfg": ..., "preprocess_cfg": ...}``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KnownError(f"Cannot read the model config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise KnownError(f"The model config {path} is not a JSON object")
    if "model_cfg" in raw:
        doc = {"model_cfg": raw["model_cfg"], "preprocess_cfg": raw.get("preprocess_cfg") or {}}
    else:
        doc = {"model_cfg": raw, "preprocess_cfg": {}}
    if not isinstance(doc["model_cfg"], dict) or not all(
        key in doc["model_cfg"] for key in ("embed_dim", "vision_cfg", "text_cfg")
    ):
        raise KnownError(f"{path} is not an open_clip model config (it needs embed_dim, vision_cfg, text_cfg)")
    return doc


def _from_sibling_manifest(file: Path, config: Path | None) -> tuple[str | None, Path | None]:
    """Name (and config) from a photoembed manifest.json next to the file: a model folder copied over."""
    manifest = _read_json(file.parent / MANIFEST)
    if not manifest or manifest.get("weights") != file.name or not isinstance(manifest.get("name"), str):
        return None, config
    if config is None and manifest.get("config"):
        candidate = file.parent / str(manifest["config"])
        config = candidate if candidate.is_file() else None
    return str(manifest["name"]), config


def _arch_from_config_path(config: Path) -> str:
    """open_clip names architectures after their config file (``ViT-B-32.json`` -> ``ViT-B-32``)."""
    stem = config.stem if config.stem != "open_clip_config" else config.parent.name
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip(".-") or "custom"


def _copy_hashed(source: Path, target: Path) -> str:
    """Copy a file durably, returning its sha256."""
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(_COPY_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    except OSError as exc:
        raise KnownError(f"Cannot copy {source} into {target.parent}: {exc}") from exc
    return digest.hexdigest()


def move_into_place(staging: Path, final: Path) -> None:
    """Swap a staged folder in for ``final``. A crash in between leaves a hidden folder that ``list`` ignores."""
    old = None
    if final.exists():
        old = final.with_name(f".replaced-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _safetensors_alternatives(filename: str) -> builtins.list[str]:
    """open_clip's ``_get_safe_alternatives``: the safetensors twin a Hub repo may hold."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def _hub_offline_mode() -> bool:
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def _offline_message(name: str, repo_id: str | None) -> str:
    where = f" from https://huggingface.co/{repo_id}" if repo_id else ""
    return (
        f"Could not download {name}: this machine cannot reach the model hub; fetch the weights file{where} "
        f"on a machine with internet and run `photoembed model install FILE --model {name}`."
    )
