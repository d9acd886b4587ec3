"""The composition root: builds the services a front end uses, from one set of folders.

A front end (CLI command, GUI window, test) makes its own :class:`Library`; nothing here is global. Heavy
parts load on first use: the model (torch, open_clip) only when a photo needs embedding or a query needs
encoding, and the FAISS index only when a search needs it. So ``photoembed index`` with nothing new to
embed never imports torch.

Resources have a lifetime: one :class:`~photoembed.core.indexer.Indexer` (and so one decode pool) per
Library and batch size, closed with it; the image tower is unloaded after the ``model_idle_s`` setting's
seconds without use (reloaded on the next photo that needs it).

Privacy: every folder of the library's home is made readable by its owner only (0700) and the files in
the data and config folders 0600, whatever the umask: the catalog holds every path, date, GPS flag,
thumbnail and vector.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoembed.config import Paths, Settings, load_settings, save_settings
from photoembed.core.indexer import Indexer
from photoembed.errors import ModelUnavailableError
from photoembed.ml.encoder import ClipEncoder, RuntimePlan, plan_runtime
from photoembed.ml.models import ModelStore
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex

if TYPE_CHECKING:
    from photoembed.dedup.service import DedupService
    from photoembed.dedup.trash import TrashBackend
    from photoembed.search.service import SearchService

logger = logging.getLogger(__name__)

IMAGE_TOWERS = ("image",)


class Library:
    """One photo library: its catalog, settings, models and index.

    Args:
        paths: the library's folders.
        settings: default: read from the settings file. Its ``model_idle_s`` says when the image tower
            is unloaded; replacing :attr:`settings` applies a new value from then on.

    Thread contract: the encoders are created lazily under a lock; the object that owns the model (the
    indexing thread) should be the only one calling the image encoder.
    """

    def __init__(self, paths: Paths, *, settings: Settings | None = None) -> None:
        paths.ensure()
        make_home_private(paths)
        self.paths = paths
        self._settings = settings if settings is not None else load_settings(paths)
        self.catalog = Catalog.open(paths.catalog)
        try:
            self.models = ModelStore(paths.models, paths.model_downloads)
            self.vector_index = VectorIndex(paths.index_dir, self.catalog)
        except BaseException:
            self.catalog.close()
            raise
        self._encoders: dict[tuple[str, ...], ClipEncoder] = {}
        self._indexers: dict[int, Indexer] = {}
        self._lock = threading.RLock()
        self._last_use = time.monotonic()
        self._holders = 0
        self._idle_timer: threading.Timer | None = None
        self.model_unloads = 0  # image-tower unloads after idle time (tests, status)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """Replace the settings as a whole; a new ``model_idle_s`` applies from now on."""
        with self._lock:
            self._settings = settings
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if any("image" in k for k in self._encoders):
                self._arm_idle_timer()

    @property
    def model_idle_s(self) -> float | None:
        """Seconds without use before the image tower is unloaded (the setting; None: never)."""
        idle = self._settings.model_idle_s
        return idle if idle > 0 else None

    def save_settings(self) -> None:
        save_settings(self.paths, self.settings)

    def model_available(self) -> bool:
        return self.models.weights_for(self.settings.model) is not None

    def runtime_plan(self) -> RuntimePlan:
        """Which engine the configured model runs on, and the name its vectors are stored under."""
        return plan_runtime(
            self.models,
            self.settings.model,
            runtime=self.settings.runtime,
            device="auto" if self.settings.use_gpu else "cpu",
        )

    def encoder(self, towers: Sequence[str] = ("image", "text")) -> ClipEncoder:
        """The configured CLIP model (loaded once per Library). Raises ModelUnavailableError."""
        key = tuple(sorted(towers))
        with self._lock:
            self._last_use = time.monotonic()
            # A full model serves text queries too: never load the text tower twice.
            for loaded_key, loaded in self._encoders.items():
                if set(key) <= set(loaded_key) and loaded.model == self.settings.model:
                    return loaded
            encoder = ClipEncoder.load(
                self.models,
                self.settings.model,
                device="auto" if self.settings.use_gpu else "cpu",
                threads=self.settings.threads,
                towers=key,
                runtime=self.settings.runtime,
            )
            self._encoders[key] = encoder
            if "image" in key:
                self._arm_idle_timer()
            return encoder

    def text_encoder(self) -> ClipEncoder:
        """Only the text tower: a text search need not load the image tower."""
        return self.encoder(("text",))

    def indexer(self, *, require_model: bool = False, batch_size: int = 16) -> Indexer:
        """The library's Indexer (one per batch size, so one decode pool): it embeds with the model when its
        weights are installed, loading it on the first photo that needs it, else it catalogs without it."""
        available = self.model_available()
        if not available:
            if require_model:
                raise ModelUnavailableError(
                    f"No weights for model {self.settings.model}: run `photoembed model download` or "
                    "`photoembed model install FILE`"
                )
            # Front ends tell the user in their own words; this is for the log.
            logger.info("No model weights installed: cataloguing photos without embedding them")
        with self._lock:
            indexer = self._indexers.get(batch_size)
            if indexer is not None and (indexer.model is not None) == available and (
                indexer.model is None or indexer.model == self.settings.model
            ):
                return indexer
            if indexer is not None:
                indexer.close()
            indexer = Indexer(
                catalog=self.catalog,
                settings=self.settings,
                encoder=None,
                encoder_source=_ImageModel(self) if available else None,
                vector_index=self.vector_index,
                batch_size=batch_size,
            )
            self._indexers[batch_size] = indexer
            return indexer

    # -- services for front ends (built per call: each reads through the calling thread's connection) --

    def search_service(self, *, image_encoder_provider: Callable[[], Any] | None = None) -> SearchService:
        """Text and photo queries over this library (``image_encoder_provider``: default, the image tower)."""
        from photoembed.imaging.decode import decode_photo
        from photoembed.search.service import SearchService

        return SearchService(
            catalog=self.catalog,
            vector_index=self.vector_index,
            encoder_provider=self.text_encoder,
            image_encoder_provider=image_encoder_provider or (lambda: self.encoder(IMAGE_TOWERS)),
            decode=decode_photo,
        )

    def dedup_service(self, *, trash: TrashBackend | None = None, with_indexer: bool = False) -> DedupService:
        """Duplicate finding, trash and undo (``trash``: default, the OS trash; ``with_indexer``: undo
        re-indexes what it puts back)."""
        from photoembed.dedup.service import DedupService
        from photoembed.dedup.trash import SystemTrash

        return DedupService(
            catalog=self.catalog,
            settings=self.settings,
            trash=trash if trash is not None else SystemTrash(),
            indexer=self.indexer() if with_indexer else None,
        )

    # -- the image model's lifetime ------------------------------------------------------------------

    @contextlib.contextmanager
    def holding_model(self) -> Iterator[None]:
        """Keep the image tower loaded while the block runs (a sync); the idle clock restarts after it."""
        with self._lock:
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                self._last_use = time.monotonic()

    def unload_idle_model(self, *, now: float | None = None) -> bool:
        """Unload the image tower if nobody holds it and it was not used for ``model_idle_s``."""
        with self._lock:
            if self.model_idle_s is None or self._holders > 0:
                return False
            now = time.monotonic() if now is None else now
            if now - self._last_use < self.model_idle_s:
                return False
            unloaded = [self._encoders.pop(k) for k in [k for k in self._encoders if "image" in k]]
            indexers = list(self._indexers.values())
            if unloaded:
                self.model_unloads += 1
                logger.info("Unloaded the image model after %.0f s without use", now - self._last_use)
        # Outside the lock: an indexer's own lock is never taken while holding the library's.
        for indexer in indexers:
            indexer.forget_encoder()
        for encoder in unloaded:
            encoder.unload()
        return bool(unloaded)

    def _arm_idle_timer(self) -> None:
        if self.model_idle_s is None or self._idle_timer is not None:
            return
        delay = max(0.05, self.model_idle_s - (time.monotonic() - self._last_use))
        timer = threading.Timer(delay, self._on_idle_timer)
        timer.daemon = True
        timer.name = "photoembed-model-idle"
        self._idle_timer = timer
        timer.start()

    def _on_idle_timer(self) -> None:
        with self._lock:
            if self._idle_timer is not threading.current_thread():
                return  # cancelled or replaced (new settings) as it fired
            self._idle_timer = None
        if not self.unload_idle_model():
            with self._lock:
                if any("image" in k for k in self._encoders):
                    self._arm_idle_timer()

    def close(self) -> None:
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            indexers = list(self._indexers.values())
            self._indexers.clear()
        for indexer in indexers:
            indexer.close()
        for encoder in self._encoders.values():
            encoder.unload()
        self._encoders.clear()
        self.catalog.close()


class _ImageModel:
    """The library's image tower as the indexer's encoder source: named without loading, loaded on need."""

    def __init__(self, library: Library) -> None:
        self._library = library
        self.name = library.settings.model

    def get(self) -> ClipEncoder:
        return self._library.encoder(IMAGE_TOWERS)

    def held(self) -> contextlib.AbstractContextManager[object]:
        return self._library.holding_model()


def make_home_private(paths: Paths) -> None:
    """0700 for the home's folders, 0600 for the files of the data and config folders, whatever the umask.

    The cache (thumbnails, downloads) may hold a million files: only its folders at the top are changed,
    which is enough, since nobody else can enter them.
    """
    folders = {paths.data, paths.cache, paths.config}
    parents = {p.parent for p in folders}
    if len(parents) == 1:  # an explicit home: data, cache and config side by side in it
        folders |= parents
    for folder in folders:
        _chmod(folder, 0o700)
    for top in (paths.data, paths.config):
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames:
                _chmod(Path(dirpath) / name, 0o700)
            for name in filenames:
                _chmod(Path(dirpath) / name, 0o600)
    with contextlib.suppress(OSError):
        for entry in os.scandir(paths.cache):
            if entry.is_dir(follow_symlinks=False):
                _chmod(Path(entry.path), 0o700)


def _chmod(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        if (st.st_mode & 0o777) != mode and not path.is_symlink():
            os.chmod(path, mode)
    except OSError as exc:
        logger.debug("Cannot make %s private: %s", path, exc)
