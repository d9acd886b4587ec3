"""Where photoembed keeps its files, and the user's settings.

All data, cache and config move together: ``--home DIR`` or ``PHOTOEMBED_HOME`` relocates the three as one
unit (tests always use it); otherwise the platform's conventional directories are used (platformdirs).
Settings are one typed dataclass, stored as JSON with a ``schema_version`` and upgraded by ordered steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from photoembed.errors import KnownError

logger = logging.getLogger(__name__)

APP_NAME = "photoembed"
HOME_ENV = "PHOTOEMBED_HOME"
DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"

DEFAULT_EXCLUDED_PATTERNS: tuple[str, ...] = (
    ".thumbnails",
    ".thumbs",
    "@eaDir",
    ".git",
    ".svn",
    ".hg",
    "node_modules",
    "$RECYCLE.BIN",
    "System Volume Information",
    ".Trash*",
    ".Trashes",
    ".Spotlight-V100",
    ".fseventsd",
    ".photoembed",
    "__pycache__",
    "lost+found",
)

#: Keeper rules, in the order that finds the original among its copies (photoembed.dedup.keeper).
DEFAULT_KEEPER_CRITERIA: tuple[str, ...] = (
    "camera_metadata",
    "earliest",
    "camera_format",
    "unedited",
    "resolution",
    "sharpness",
    "file_size",
    "shorter_path",
)
# Keeper rules of settings schema 1, and what each became ("file_size" stays, now only between re-encodes of
# the same pixels: an edit or a lossless re-save is larger for other reasons).
_KEEPER_RENAMED_V1: dict[str, str | None] = {
    "has_metadata": "camera_metadata",
    "older": "earliest",
    "original_format": "camera_format",
}
_KEEPER_DEFAULT_V1 = [
    "resolution", "original_format", "file_size", "has_metadata", "sharpness", "older", "shorter_path"
]


@dataclass(frozen=True)
class Paths:
    """The folders photoembed writes to.

    Attributes:
        data: the catalog, vectors and the FAISS index.
        cache: thumbnails and downloaded model weights (a ``CACHEDIR.TAG`` marks it).
        config: ``settings.json``.
    """

    data: Path
    cache: Path
    config: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """Paths for an explicit home, else ``$PHOTOEMBED_HOME``, else the platform defaults."""
        chosen = home if home is not None else os.environ.get(HOME_ENV) or None
        if chosen is not None:
            root = Path(chosen).expanduser().resolve()
            return cls(data=root / "data", cache=root / "cache", config=root / "config")
        return cls(
            data=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            cache=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            config=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        )

    @property
    def catalog(self) -> Path:
        return self.data / "catalog.sqlite3"

    @property
    def index_dir(self) -> Path:
        return self.data / "index"

    @property
    def models(self) -> Path:
        """Installed weights (copied from a local file) and their open_clip configs."""
        return self.data / "models"

    @property
    def model_downloads(self) -> Path:
        return self.cache / "models"

    @property
    def thumbnails(self) -> Path:
        return self.cache / "thumbnails"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    def ensure(self) -> None:
        """Create the folders, and mark the cache so that backup tools skip it."""
        try:
            for folder in (self.data, self.cache, self.config):
                folder.mkdir(parents=True, exist_ok=True)
            tag = self.cache / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This file is a cache directory tag created by photoembed.\n"
                    "# For information about cache directory tags, see https://bford.info/cachedir/\n",
                    encoding="utf-8",
                )
        except OSError as exc:
            raise KnownError(f"Cannot create photoembed's folders under {self.data.parent}: {exc}") from exc


SETTINGS_SCHEMA_VERSION = 2


# The inference engines (photoembed.ml.engine.RUNTIME_SETTINGS, repeated here: config sits below ml).
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")

#: More torch threads than this is a typo, not a machine (and torch fails in ways that blame the weights).
MAX_THREADS = 1024

#: The image tower is freed after 10 minutes without use (Settings.model_idle_s).
DEFAULT_MODEL_IDLE_S = 600.0


class SettingsError(KnownError):
    """A setting has the wrong type or an out-of-range value.

    Attributes:
        key: the setting's name, as in settings.json.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _type_name(value: object) -> str:
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


def _as_str(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise SettingsError(key, f'setting "{key}" must be a text, not {_type_name(value)}')
    return value


def _as_bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(key, f'setting "{key}" must be true or false, not {_type_name(value)}')
    return value


def _as_int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(key, f'setting "{key}" must be a whole number, not {_type_name(value)}')
    return value


def _as_float(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(key, f'setting "{key}" must be a number, not {_type_name(value)}')
    return float(value)


def _as_strings(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SettingsError(key, f'setting "{key}" must be a list of texts, not {_type_name(value)}')
    for item in value:
        if not isinstance(item, str):
            raise SettingsError(key, f'setting "{key}" must be a list of texts; it holds {_type_name(item)}')
    return tuple(value)


@dataclass(frozen=True)
class Settings:
    """User preferences: an immutable, type-checked value. Every field has a default, so a missing file
    means "all defaults". Change settings by making a new value (``dataclasses.replace``) and replacing the
    old one as a whole.

    Attributes:
        model: the embedding model, as ``ARCH/PRETRAINED_TAG`` (open_clip names).
        excluded_patterns: folder or file name patterns (fnmatch) skipped while scanning.
        include_hidden: index files and folders whose name starts with a dot.
        similar_threshold: default CLIP cosine similarity for the "similar shots" tier.
        similar_time_window_s: optional time window (seconds) for similar shots; 0 means no window.
        keeper_criteria: the order in which keeper rules break ties.
        threads: torch threads for the model; 0 means automatic: every core while indexing (decoding and
            the model share them), one fewer than the CPU count for searches (the UI keeps a core).
        use_gpu: use CUDA or Apple MPS when present.
        runtime: the CPU inference engine: ``"auto"`` (ONNX Runtime when the model's verified export
            exists or can be made, else torch), ``"torch"``, ``"onnx"``, or the opt-in ``"onnx-int8"``
            (ONNX Runtime dynamic quantisation of the image tower; its vectors are stored apart from exact
            ones). GPUs always run torch.
        model_idle_s: seconds without use after which the image model is unloaded to free its memory
            (about 350 MB for ViT-B-32; it loads again on the next photo that needs it); 0 keeps it loaded.

    Raises:
        SettingsError: (on construction) a value of the wrong type; see :meth:`validate` for ranges.
    """

    schema_version: int = SETTINGS_SCHEMA_VERSION
    model: str = DEFAULT_MODEL
    excluded_patterns: tuple[str, ...] = DEFAULT_EXCLUDED_PATTERNS
    include_hidden: bool = False
    similar_threshold: float = 0.92
    similar_time_window_s: float = 0.0
    keeper_criteria: tuple[str, ...] = DEFAULT_KEEPER_CRITERIA
    threads: int = 0
    use_gpu: bool = True
    runtime: str = "auto"
    model_idle_s: float = DEFAULT_MODEL_IDLE_S

    @property
    def embedding_model(self) -> str:
        """The name this library's vectors are stored under: the model, plus ``@ort-int8`` under the int8
        runtime (its vectors are not exact, so they never mix with others; photoembed.ml.engine.embedding_key)."""
        return f"{self.model}@ort-int8" if self.runtime == "onnx-int8" else self.model

    def __post_init__(self) -> None:
        checked = {
            "schema_version": _as_int("schema_version", self.schema_version),
            "model": _as_str("model", self.model),
            "excluded_patterns": _as_strings("excluded_patterns", self.excluded_patterns),
            "include_hidden": _as_bool("include_hidden", self.include_hidden),
            "similar_threshold": _as_float("similar_threshold", self.similar_threshold),
            "similar_time_window_s": _as_float("similar_time_window_s", self.similar_time_window_s),
            "keeper_criteria": _as_strings("keeper_criteria", self.keeper_criteria),
            "threads": _as_int("threads", self.threads),
            "use_gpu": _as_bool("use_gpu", self.use_gpu),
            "runtime": _as_str("runtime", self.runtime),
            "model_idle_s": _as_float("model_idle_s", self.model_idle_s),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # lists become tuples: the value stays immutable

    def validate(self) -> None:
        """Raise SettingsError on out-of-range values (a hand-edited file, say)."""
        if not 0.0 < self.similar_threshold <= 1.0:
            raise SettingsError(
                "similar_threshold", f"similar_threshold must be in (0, 1], not {self.similar_threshold}"
            )
        if self.similar_time_window_s < 0:
            raise SettingsError(
                "similar_time_window_s", f"similar_time_window_s must be 0 or more, not {self.similar_time_window_s}"
            )
        if not 0 <= self.threads <= MAX_THREADS:
            raise SettingsError(
                "threads", f"threads must be 0 (automatic) or a count up to {MAX_THREADS}, not {self.threads}"
            )
        if not (math.isfinite(self.model_idle_s) and self.model_idle_s >= 0):
            raise SettingsError(
                "model_idle_s", f"model_idle_s must be 0 (never unload) or a number of seconds, not {self.model_idle_s}"
            )
        if self.runtime not in RUNTIMES:
            raise SettingsError("runtime", f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}")
        unknown = set(self.keeper_criteria) - set(DEFAULT_KEEPER_CRITERIA)
        if unknown:
            raise SettingsError("keeper_criteria", f"Unknown keeper criteria: {', '.join(sorted(unknown))}")
        if not self.model.strip():
            raise SettingsError("model", "model must name an embedding model")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# Each step upgrades the raw dict from version N to N+1. Steps are applied in order on a copy, so a
# failing step leaves the stored file untouched.
def _keeper_rules_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the keeper rules that find the original. The old default order becomes the new one; a
    user's own order keeps its renamed rules in place, then gains the new ones in their default order."""
    if "keeper_criteria" not in raw:
        return raw
    old = raw["keeper_criteria"]
    if old == _KEEPER_DEFAULT_V1:
        raw.pop("keeper_criteria")
        return raw
    if not isinstance(old, list):
        return raw  # a wrong type: the type check on load names the key
    order: list[str] = []
    for name in old:
        new = _KEEPER_RENAMED_V1.get(name, name) if isinstance(name, str) else None
        if new is not None and new not in order:
            order.append(new)
    raw["keeper_criteria"] = order + [k for k in DEFAULT_KEEPER_CRITERIA if k not in order]
    return raw


_SETTINGS_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _keeper_rules_v2}


def load_settings(paths: Paths) -> Settings:
    """Read settings.json, upgrading old versions; defaults where the file is absent.

    Raises:
        SettingsError: a setting of the wrong type or out of range (the message names the file and key).
        KnownError: the file cannot be read or is not a JSON object.
    """
    path = paths.settings_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise KnownError(f"Cannot read settings from {path}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise KnownError(f"Settings file {path} is not valid JSON ({exc}); fix it or delete it") from exc
    if not isinstance(raw, dict):
        raise KnownError(f"Settings file {path} does not hold a JSON object; fix it or delete it")
    try:
        version = _as_int("schema_version", raw.get("schema_version", 1))
        if version > SETTINGS_SCHEMA_VERSION:
            raise KnownError(
                f"Settings file {path} was written by a newer photoembed (schema {version}); please upgrade"
            )
        upgraded = dict(raw)
        while version < SETTINGS_SCHEMA_VERSION:
            upgraded = _SETTINGS_MIGRATIONS[version](upgraded)
            version += 1
            upgraded["schema_version"] = version
        known = {f.name for f in dataclasses.fields(Settings)}
        ignored = set(upgraded) - known
        if ignored:
            logger.warning("Ignoring unknown settings in %s: %s", path, ", ".join(sorted(ignored)))
        settings = Settings(**{k: v for k, v in upgraded.items() if k in known})
        settings.validate()
    except SettingsError as exc:
        raise SettingsError(exc.key, f"In {path}, {exc}; fix that line or delete it for the default") from exc
    return settings


def save_settings(paths: Paths, settings: Settings) -> None:
    """Write settings.json atomically (temp file + rename)."""
    settings.validate()
    paths.config.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.settings_file, json.dumps(settings.to_json(), indent=2) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
