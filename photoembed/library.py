"""The composition root: builds the services a front end uses, from one set of folders.

A front end (CLI command, GUI window, test) makes its own :class:`Library`; nothing here is global. Heavy
parts load on first use: the model (torch, open_clip) only when a command needs embeddings, and the FAISS
index only when a search needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from photoembed.config import Paths, Settings, load_settings, save_settings
from photoembed.core.indexer import Indexer
from photoembed.errors import ModelUnavailableError
from photoembed.ml.encoder import ClipEncoder, RuntimePlan, plan_runtime
from photoembed.ml.models import ModelStore
from photoembed.storage.catalog import Catalog
from photoembed.storage.vector_index import VectorIndex

logger = logging.getLogger(__name__)


class Library:
    """One photo library: its catalog, settings, models and index.

    Thread contract: the encoders are created lazily under a lock; the object that owns the model (the
    indexing thread) should be the only one calling the image encoder.
    """

    def __init__(self, paths: Paths, *, settings: Settings | None = None) -> None:
        paths.ensure()
        self.paths = paths
        self.settings = settings if settings is not None else load_settings(paths)
        self.catalog = Catalog.open(paths.catalog)
        self.models = ModelStore(paths.models, paths.model_downloads)
        self.vector_index = VectorIndex(paths.index_dir, self.catalog)
        self._encoders: dict[tuple[str, ...], ClipEncoder] = {}
        self._lock = threading.Lock()

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
            return encoder

    def text_encoder(self) -> ClipEncoder:
        """Only the text tower: a text search need not load the image tower."""
        return self.encoder(("text",))

    def indexer(self, *, require_model: bool = False, batch_size: int = 16) -> Indexer:
        """An Indexer with the model when its weights are installed, else one that catalogs without it."""
        try:
            encoder: ClipEncoder | None = self.encoder(("image",))
        except ModelUnavailableError:
            if require_model:
                raise
            # Front ends tell the user in their own words; this is for the log.
            logger.info("No model weights installed: cataloguing photos without embedding them")
            encoder = None
        return Indexer(
            catalog=self.catalog,
            settings=self.settings,
            encoder=encoder,
            vector_index=self.vector_index,
            batch_size=batch_size,
        )

    def close(self) -> None:
        for encoder in self._encoders.values():
            encoder.unload()
        self._encoders.clear()
        self.catalog.close()
