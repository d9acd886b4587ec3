"""The controller's browse and search part: listings, text and photo queries, trash plans for a selection.

The search view talks to this part. Queries run on the read pool; a query photo that has no stored vector
needs the image model, which only the library worker runs, so that query moves to the worker (pausing a
running sync for one batch). GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from photoembed.gui.workers import TaskError

if TYPE_CHECKING:
    from photoembed.dedup.records import TrashPlan
    from photoembed.dedup.service import DedupService
    from photoembed.gui.controller import LibraryController
    from photoembed.library import Library
    from photoembed.search.filters import SearchFilters
    from photoembed.search.service import SearchResults

logger = logging.getLogger(__name__)


class BrowsePart(QObject):
    """Browse and search. Create through :class:`~photoembed.gui.controller.LibraryController`."""

    def __init__(self, hub: LibraryController) -> None:
        super().__init__(hub)
        self.hub = hub
        self.tasks = hub.tasks

    def read(self, fn: Callable[[Library], Any], callback: Callable[[Any], None],
             on_error: Callable[[TaskError], None] | None = None) -> int:
        """A read-only ``fn(library)`` on the read pool (listings, date ranges)."""
        return self.hub.read(fn, callback, on_error)

    def search(
        self,
        *,
        query: str | None = None,
        photo: Path | None = None,
        filters: SearchFilters | None = None,
        k: int = 200,
        on_result: Callable[[SearchResults], None],
        on_error: Callable[[TaskError], None],
    ) -> None:
        """Run a text or photo query on the read pool; the caller drops stale answers by its own request id.

        A query photo that is in the library and unchanged uses its stored vector (no model call). Any
        other photo needs the image model, which belongs to the library worker: that query is handed to
        the worker, pausing a running sync for one batch (the sync resumes where it stopped).
        """
        library = self.hub.require()
        self.tasks.read_pool.clear(tag="search")  # a queued, superseded query is dropped before it runs

        def run(image_provider: Callable[[], Any] | None) -> SearchResults:
            service = library.search_service(image_encoder_provider=image_provider)
            if photo is not None:
                return service.similar(photo, k=k, filters=filters)
            return service.search(query or "", k=k, filters=filters)

        def deferred() -> Any:
            return _DeferredImageEncoder(library.settings.embedding_model)

        def on_pool() -> SearchResults | _NeedsWorker:
            try:
                return run(deferred)
            except NeedsImageModel:
                return _NEEDS_WORKER  # the photo has no stored vector: only the worker may run the model

        def on_pool_result(value: SearchResults | _NeedsWorker) -> None:
            if not isinstance(value, _NeedsWorker):
                on_result(value)
                return
            self.tasks.submit("search-photo", lambda _ctx: run(None), on_result=on_result, on_failed=on_error)

        self.tasks.read(on_pool, on_pool_result, on_error, priority=10, tag="search")

    def plan_selection_trash(self, paths: Sequence[Path], callback: Callable[[SelectionPlan], None]) -> None:
        """What moving chosen photos to the trash would do, under the duplicates' safety rules (pool).

        Each chosen photo becomes a two-photo cluster with another copy of the same content that stays (and
        that is not chosen too), so the dedup service plans, checks, journals and undoes the move exactly as
        for duplicates. A photo without another copy, or in a protected folder, is refused, never moved.
        """
        chosen = list(paths)
        self.hub.read(lambda library: _plan_selection(library.dedup_service(), library, chosen), callback)

    def trash(self, plan: TrashPlan, *, on_result: Callable[[int], None],
              on_error: Callable[[TaskError], None]) -> None:
        """Move a selection's plan to the trash: the same journaled move, and undo, as for duplicates."""
        self.hub.dupes.trash(plan, on_result=on_result, on_error=on_error)

    def undo_trash(self, batch: int | None, *, on_result: Callable[[list[Path]], None],
                   on_error: Callable[[TaskError], None]) -> None:
        self.hub.dupes.undo_trash(batch, on_result=on_result, on_error=on_error)


class NeedsImageModel(Exception):
    """The query needs the image model, which only the library worker runs.

    Deliberately not a :class:`KnownError`: services re-wrap a KnownError into a message for the user, and
    this one must reach :meth:`BrowsePart.search` by its type, untouched.
    """


class _NeedsWorker:
    """The read pool's answer when a query must move to the library worker."""


_NEEDS_WORKER = _NeedsWorker()


class _DeferredImageEncoder:
    """Stands in for the image encoder on the read pool: its name is enough to use a stored vector.

    Anything that would run the image model raises :class:`NeedsImageModel`, and the query moves to the
    library worker, the only thread that runs the image tower.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        raise NeedsImageModel(attribute)


@dataclass(frozen=True)
class SelectionPlan:
    """A trash plan for chosen photos, and the chosen photos it refuses (with the reason, in words)."""

    plan: TrashPlan
    refused: list[tuple[Path, str]]


def _plan_selection(service: DedupService, library: Library, paths: Sequence[Path]) -> SelectionPlan:
    """Pool thread: see :meth:`BrowsePart.plan_selection_trash`."""
    from photoembed.dedup.records import Cluster, ClusterPhoto, TrashPlan
    from photoembed.storage.browse import copies_by_hash

    catalog = library.catalog
    protected = [p.resolve() for p in service.protected_folders()]
    photos = []
    refused: list[tuple[Path, str]] = []
    for path in paths:
        photo = catalog.photo_by_path(path)
        if photo is None or not photo.ok or photo.content_hash is None:
            refused.append((path, "not a readable photo of the library"))
        elif any(photo.path.is_relative_to(folder) for folder in protected):
            refused.append((photo.path, "in a protected folder"))
        else:
            photos.append(photo)
    chosen = {p.path for p in photos}
    copies = copies_by_hash(catalog, [p.content_hash for p in photos if p.content_hash])
    clusters = []
    only_copies = []
    for photo in photos:
        keepers = [c for c in copies.get(photo.content_hash or "", []) if c.path not in chosen]
        if not keepers:
            only_copies.append(photo)  # the user's choice: it goes, journaled, and undo brings it back
            continue
        keeper = keepers[0]
        clusters.append(Cluster("selection", (
            ClusterPhoto(photo_id=keeper.photo_id, path=keeper.path, size=keeper.size, mtime_ns=keeper.mtime_ns,
                         content_hash=keeper.content_hash, keep=True, reason="another copy, kept",
                         match="keeper", score=1.0, protected=False),
            ClusterPhoto(photo_id=photo.id, path=photo.path, size=photo.size, mtime_ns=photo.mtime_ns,
                         content_hash=photo.content_hash, keep=False, reason="your choice",
                         match="identical", score=1.0, protected=False),
        )))
    with_copies = service.plan_trash(clusters).items
    return SelectionPlan(TrashPlan(with_copies + service.plan_chosen_trash(only_copies).items), refused)


def library_date_range(library: Library) -> tuple[float, float] | None:
    """Pool thread: the earliest and latest capture time of the readable photos, or None when none has one."""
    return library.catalog.taken_range()
