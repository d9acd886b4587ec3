"""The controller's duplicates part: clustering, trash plans, trash and undo, "not duplicates" marks.

The duplicates view talks to this part (and the search view's selection trash goes through its trash and
undo, so that both follow the same safety rules and journal). Clustering only reads the catalog, so it
runs on the analysis pool beside the library worker; everything that moves files or writes the catalog
runs on the worker. GUI thread only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from photoembed.errors import Cancelled
from photoembed.gui.workers import TaskContext, TaskError

if TYPE_CHECKING:
    from photoembed.dedup.records import Cluster, TrashPlan
    from photoembed.gui.controller import LibraryController
    from photoembed.library import Library

logger = logging.getLogger(__name__)


class DuplicatesPart(QObject):
    """Duplicates. Create through :class:`~photoembed.gui.controller.LibraryController`."""

    def __init__(self, hub: LibraryController) -> None:
        super().__init__(hub)
        self.hub = hub
        self.tasks = hub.tasks
        self._cluster_cancel: threading.Event | None = None

    def read(self, fn: Callable[[Library], Any], callback: Callable[[Any], None],
             on_error: Callable[[TaskError], None] | None = None) -> int:
        """A read-only ``fn(library)`` on the read pool (a photo's details, a plan)."""
        return self.hub.read(fn, callback, on_error)

    def find_clusters(
        self,
        *,
        tier: str | None,
        threshold: float,
        time_window: float | None,
        on_result: Callable[[list[Cluster]], None],
        on_error: Callable[[TaskError], None],
    ) -> None:
        """Cluster on the analysis pool; a newer request cancels an older one, whose answer is dropped.

        Clustering only reads the catalog, so it runs beside the library worker (which may be watching
        or indexing) instead of queueing behind it; re-clustering follows the threshold slider live.
        """
        library = self.hub.require()
        self.cancel_clustering()
        self.tasks.analysis_pool.clear()
        cancel = threading.Event()
        self._cluster_cancel = cancel

        def run() -> list[Cluster]:
            if not library.catalog.roots():
                return []  # no folder, nothing to compare
            generator = library.dedup_service().iter_find_clusters(
                tier=tier, threshold=threshold, time_window=time_window, cancel=cancel
            )
            while True:
                if cancel.is_set():
                    raise Cancelled("superseded")
                try:
                    next(generator)
                except StopIteration as stop:
                    return list(stop.value)

        self.tasks.analysis_pool.submit(run, on_result, on_error)

    def cancel_clustering(self) -> None:
        if self._cluster_cancel is not None:
            self._cluster_cancel.set()

    def plan_trash(self, clusters: Sequence[Cluster], callback: Callable[[TrashPlan], None]) -> None:
        """What moving the clusters' non-kept photos would move, and free (read on the pool)."""
        chosen = list(clusters)
        self.hub.read(lambda library: library.dedup_service().plan_trash(chosen), callback)

    def trash(
        self, plan: TrashPlan, *, on_result: Callable[[int], None], on_error: Callable[[TaskError], None],
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        """Move a plan's files to the OS trash on the worker; ``on_result`` gets the batch id for undo."""
        library = self.hub.require()

        def task(ctx: TaskContext) -> int:
            return ctx.drive(library.dedup_service().iter_execute(plan, cancel=ctx.cancel))

        def done(batch: int) -> None:
            on_result(batch)
            self.hub.library_changed()

        self.tasks.submit("trash", task, on_progress=on_progress, on_result=done, on_failed=on_error)

    def undo_trash(
        self, batch: int | None, *, on_result: Callable[[list[Path]], None], on_error: Callable[[TaskError], None]
    ) -> None:
        """Restore a removal batch from the trash (default: the last); the catalog follows."""
        library = self.hub.require()

        def task(ctx: TaskContext) -> list[Path]:
            return ctx.drive(library.dedup_service(with_indexer=True).iter_undo(batch, cancel=ctx.cancel))

        def done(paths: list[Path]) -> None:
            on_result(paths)
            self.hub.library_changed()

        self.tasks.submit("undo", task, on_result=done, on_failed=on_error)

    def mark_not_duplicates(self, cluster: Cluster, on_result: Callable[[list[tuple[str, str]]], None]) -> None:
        """Remember that the cluster's photos are not duplicates (respected by later runs); ``on_result`` gets
        the new marks, which :meth:`unmark_not_duplicates` takes back."""
        library = self.hub.require()
        paths = [p.path for p in cluster.photos]
        self.tasks.submit(
            "not-duplicates",
            lambda _ctx: library.dedup_service().add_not_duplicate_marks(paths),
            on_result=on_result,
            on_failed=self.hub.report,
        )

    def unmark_not_duplicates(self, marks: Sequence[tuple[str, str]], on_result: Callable[[int], None]) -> None:
        """Undo :meth:`mark_not_duplicates`: the photos may be proposed as duplicates again."""
        library = self.hub.require()
        chosen = list(marks)
        self.tasks.submit(
            "not-duplicates-undo",
            lambda _ctx: library.dedup_service().remove_not_duplicate_marks(chosen),
            on_result=on_result,
            on_failed=self.hub.report,
        )
