"""The GUI's hub: it owns the Library, the worker thread and the pools, and turns service work into tasks.

Views never touch the catalog, the model or the disk; they call the controller, which snapshots what the
request needs on the GUI thread, runs the work on a worker (:mod:`photoembed.gui.workers`), and applies the
result on the GUI thread through a signal or a callback.

Threads:
    * the **library worker** (one, long-lived) opens the library, syncs the index, runs the watcher's
      updates, duplicate clustering, trash and undo, model download and install: everything that writes;
    * the **read pool** runs snapshots (counts, failures, model state) and search queries;
    * the **thumbnail pool** decodes thumbnails.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from photoembed.config import Paths, Settings
from photoembed.errors import Cancelled, KnownError
from photoembed.gui.models import RootRow
from photoembed.gui.thumbnails import DiskThumbnailCache, Loader, ThumbnailProvider, load_qimage
from photoembed.gui.workers import BackgroundPool, Job, TaskContext, TaskError, TaskRunner

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress
    from photoembed.dedup.records import Cluster, TrashPlan
    from photoembed.dedup.service import DedupService
    from photoembed.library import Library
    from photoembed.search.filters import SearchFilters
    from photoembed.search.service import SearchResults, SearchService
    from photoembed.watch.service import WatchService

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_MS = 3000  # how often counts refresh while indexing


@dataclass(frozen=True)
class ModelState:
    """What the status bar says about the embedding model."""

    name: str
    available: bool
    message: str


@dataclass(frozen=True)
class LibrarySnapshot:
    """Counts and states read on a pool thread, applied on the GUI thread."""

    roots: list[RootRow]
    photos: int
    ok: int
    failed: int
    embedded: int
    pending: int
    model: ModelState
    generation: int


@dataclass
class IndexState:
    """Where indexing stands (GUI thread only)."""

    running: bool = False
    paused: bool = False
    last: Progress | None = None
    queued_paths: set[Path] = field(default_factory=set)


class LibraryController(QObject):
    """Owns the Library and the threads. Create and use on the GUI thread.

    Args:
        paths: where the library lives.
        force_sync: run every task inline (tests).
        thumbnail_loader: decodes one thumbnail on a pool thread (tests and benchmarks inject their own).
        watch: keep watching the folders after the first sync (off in tests: a watch loop never ends).

    Signals:
        opened(): the library is open; everything else is usable.
        open_failed(message): the library could not be opened.
        snapshot(LibrarySnapshot): fresh counts, folders and model state.
        index_progress(Progress): a step of the running sync.
        index_state(running: bool, paused: bool): indexing started, paused, resumed or stopped.
        index_done(summary: str): a sync finished.
        watch_changed(states: dict[Path, str]): how each folder is watched changed.
        changed(): photos or vectors changed (search results and clusters may be stale).
        notify(message: str, is_error: bool): one line for the status bar (the notification sink).
        model_download(done: int, total: int): download progress; total 0 while unknown.
        model_download_done(ok: bool, message: str): the download or install finished.
    """

    opened = Signal()
    open_failed = Signal(str)
    snapshot = Signal(object)
    index_progress = Signal(object)
    index_state = Signal(bool, bool)
    index_done = Signal(str)
    watch_changed = Signal(object)
    changed = Signal()
    notify = Signal(str, bool)
    model_download = Signal(object, object)
    model_download_done = Signal(bool, str)

    def __init__(
        self,
        paths: Paths,
        *,
        force_sync: bool = False,
        thumbnail_loader: Loader = load_qimage,
        watch: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.library: Library | None = None
        self.runner = TaskRunner(self, force_sync=force_sync)
        cores = os.cpu_count() or 2
        self.read_pool = BackgroundPool(self, threads=1, name="search", force_sync=force_sync)
        self.thumb_pool = BackgroundPool(self, threads=max(1, min(3, cores - 1)), name="thumbnails",
                                         force_sync=force_sync)
        self.analysis_pool = BackgroundPool(self, threads=1, name="duplicates", force_sync=force_sync)
        self._cluster_cancel: threading.Event | None = None
        self.thumbnails = ThumbnailProvider(self.thumb_pool, loader=thumbnail_loader,
                                            disk=DiskThumbnailCache(paths.thumbnails), parent=self)
        self.index = IndexState()
        self.watch_enabled = watch and not force_sync  # a watch loop never ends: tests sync once instead
        self._live_job: Job | None = None
        self._live_wanted = False
        self._watch_service: WatchService | None = None
        self._download_job: Job | None = None
        self._snapshot_timer = QTimer(self)
        self._snapshot_timer.setSingleShot(True)
        self._snapshot_timer.setInterval(SNAPSHOT_INTERVAL_MS)
        self._snapshot_timer.timeout.connect(self.refresh)
        self._snapshot_running = False
        self._snapshot_again = False
        self.last_snapshot: LibrarySnapshot | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def open(self, *, then_add: Sequence[Path] = ()) -> None:
        """Open the library on the worker (SQLite migrations can take a moment), then index it."""

        def task(_: TaskContext) -> Library:
            from photoembed.library import Library

            return Library(self.paths)

        def opened(library: Library) -> None:
            self.library = library
            self.opened.emit()
            self.refresh()
            self._live_wanted = True
            if then_add:
                self.add_roots(then_add)
            else:
                self.start_index()

        self.runner.submit(
            "open", task, on_result=opened, on_failed=lambda e: self.open_failed.emit(e.message),
            on_finished=lambda _cancelled: self._resume_live_when_idle(),
        )

    def shutdown(self) -> None:
        """Stop every job (the batch in flight finishes), then close the library. GUI thread only."""
        self._snapshot_timer.stop()
        self._live_wanted = False
        if self._watch_service is not None:
            self._watch_service.stop()  # wakes its idle wait at once (a cancel alone is seen within a second)
        self.thumbnails.forget_pending()
        self.runner.shutdown()
        if self._cluster_cancel is not None:
            self._cluster_cancel.set()
        self.read_pool.shutdown()
        self.analysis_pool.shutdown()
        self.thumb_pool.shutdown()
        if self.library is not None:
            self.library.close()
            self.library = None

    @property
    def settings(self) -> Settings:
        """The settings in force (a snapshot for the GUI; changes go through :meth:`save_settings`)."""
        if self.library is None:
            from photoembed.config import load_settings

            return load_settings(self.paths)
        return self.library.settings

    def require(self) -> Library:
        if self.library is None:
            raise KnownError("The library is still opening")
        return self.library

    # -- snapshots -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read counts, folders and the model state on the read pool (coalesced)."""
        if self.library is None:
            return
        if self._snapshot_running:
            self._snapshot_again = True
            return
        self._snapshot_running = True
        library = self.library
        self.read_pool.submit(lambda: take_snapshot(library), self._apply_snapshot, self._snapshot_failed,
                              priority=1)

    def _apply_snapshot(self, snap: LibrarySnapshot) -> None:
        self._snapshot_running = False
        self.last_snapshot = snap
        self.snapshot.emit(snap)
        if self._snapshot_again:
            self._snapshot_again = False
            self._snapshot_timer.start()

    def _snapshot_failed(self, error: TaskError) -> None:
        self._snapshot_running = False
        self.notify.emit(error.message, True)

    def schedule_refresh(self) -> None:
        """Refresh soon; bursts of requests collapse into one read."""
        if not self._snapshot_timer.isActive():
            self._snapshot_timer.start()

    def load_failures(self, callback: Callable[[list[tuple[str, str]]], None]) -> None:
        """The photos that could not be read, with reasons (read on the pool)."""
        library = self.require()
        self.read_pool.submit(
            lambda: [(str(f.path), f.reason) for f in library.catalog.failures()],
            callback,
            lambda e: self.notify.emit(e.message, True),
        )

    def read(self, fn: Callable[[Library], Any], callback: Callable[[Any], None],
             on_error: Callable[[TaskError], None] | None = None) -> int:
        """Run a read-only ``fn(library)`` on the read pool; ``callback`` gets its value on the GUI thread."""
        library = self.require()
        return self.read_pool.submit(
            lambda: fn(library), callback, on_error or (lambda e: self.notify.emit(e.message, True))
        )

    # -- folders -------------------------------------------------------------------------------------

    def add_roots(self, folders: Iterable[Path]) -> None:
        """Add folders to the library, then index them (dropped, chosen in a dialog, or on the command line)."""
        chosen = [Path(f) for f in folders]
        if not chosen:
            return

        def task(_: TaskContext) -> list[Path]:
            library = self.require()
            added = []
            for folder in chosen:
                if not folder.is_dir():
                    raise KnownError(f"{folder} is not a folder")
                added.append(library.catalog.add_root(folder).path)
            return added

        def done(added: list[Path]) -> None:
            names = ", ".join(p.name or str(p) for p in added)
            self.notify.emit(f"Added {names}", False)
            self.refresh()
            self.start_index(paths=added)

        self.submit_task("add-root", task, on_result=done, on_failed=self._report)

    def remove_root(self, folder: Path) -> None:
        """Forget a folder's photos (files are never touched)."""

        def task(ctx: TaskContext) -> int:
            library = self.require()
            return library.catalog.remove_root(folder)

        def done(forgotten: int) -> None:
            self.notify.emit(f"Removed {folder.name}: {forgotten:,} photos forgotten, no file touched", False)
            self.refresh()
            self._refresh_vectors()

        self.submit_task("remove-root", task, on_result=done, on_failed=self._report)

    def set_protected(self, folder: Path, protected: bool) -> None:
        def task(_: TaskContext) -> None:
            self.require().catalog.set_root_protected(folder, protected)

        def done(_: None) -> None:
            word = "protected: never proposed for removal" if protected else "no longer protected"
            self.notify.emit(f"{folder.name} is {word}", False)
            self.refresh()
            self.changed.emit()

        self.submit_task("protect", task, on_result=done, on_failed=self._report)

    def _refresh_vectors(self) -> None:
        def task(_: TaskContext) -> None:
            library = self.require()
            if library.model_available():
                library.vector_index.refresh(library.settings.embedding_model)

        self.submit_task("refresh-index", task, on_finished=lambda _c: self.changed.emit(),
                           on_failed=self._report)

    # -- indexing and watching -----------------------------------------------------------------------

    def submit_task(
        self,
        kind: str,
        fn: Callable[[TaskContext], object],
        *,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_failed: Callable[[TaskError], None] | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> Job:
        """Queue a job on the library worker, ahead of the live job.

        The live job (watching, or a sync) holds the worker while it runs; it is stopped at its next photo so
        that this job runs now, and started again once no other job is waiting. Committed batches are kept,
        so the restart only re-scans (cheap when nothing changed).
        """
        self._preempt_live()

        def finished(cancelled: bool) -> None:
            if on_finished is not None:
                on_finished(cancelled)
            self._resume_live_when_idle()

        return self.runner.submit(kind, fn, on_progress=on_progress, on_result=on_result,
                                  on_failed=on_failed or self._report, on_finished=finished)

    @property
    def watching(self) -> bool:
        """Whether the folders are being watched right now."""
        return self._live_job is not None and self.watch_enabled

    def start_index(self, *, paths: Sequence[Path] | None = None) -> None:
        """Bring the index up to date (all folders, or ``paths``), and keep watching if enabled."""
        if self.library is None:
            return
        self._live_wanted = True
        self.index.paused = False
        if self._live_job is not None:
            if self._watch_service is not None:
                self._watch_service.reconcile(paths)  # the running watcher syncs them at its next step
            else:
                self.index.queued_paths.update(paths or [Path("/")])
            return
        if paths is not None:
            self.index.queued_paths.update(paths)
        if not any(job.kind != "live" for job in self.runner.active_jobs()):
            self._start_live()

    def pause_index(self) -> None:
        """Stop indexing and watching at the next photo; what is committed is kept, resuming picks it up."""
        self._live_wanted = False
        self.index.paused = True
        if self._live_job is not None:
            self._live_job.cancel()
            if self._watch_service is not None:
                self._watch_service.stop()
        else:
            self.index_state.emit(False, True)

    def resume_index(self) -> None:
        self.start_index()

    def watch_states(self) -> dict[Path, str]:
        """How each folder is watched (GUI thread; the service's state is lock-protected)."""
        service = self._watch_service
        if service is None:
            return {}
        return {state.path: _WATCH_LABELS.get(state.mode, state.mode) for state in service.root_states()}

    def _start_live(self) -> None:
        scope = None
        if self.index.queued_paths and Path("/") not in self.index.queued_paths:
            scope = sorted(self.index.queued_paths)
        self.index.queued_paths = set()
        watch = self.watch_enabled
        if watch:
            from photoembed.watch.service import WatchService

            service = WatchService.for_library(self.require())
            self._watch_service = service

        library = self.require()

        def task(ctx: TaskContext) -> None:
            from photoembed.core.indexer import Progress
            from photoembed.core.writer_lock import WriterBusyError, WriterLock

            # One writer per library: a `photoembed index` or `watch` beside the app makes it wait (said in
            # the status), never embed the same photos twice.
            writer = WriterLock(library.paths.data, command="photoembed (the app)")
            holder = writer.holder()
            if holder is not None:
                ctx.emit(_LiveNote("error", f"The library is being written by {holder.describe()}: indexing "
                                   "here starts when it ends"))
            try:
                writer.acquire(wait_s=float("inf"), poll_s=0.5, cancel=ctx.cancel)
            except WriterBusyError:
                if ctx.cancel.is_set():
                    return  # stopped while waiting (pre-empted, paused or quitting)
                raise
            try:
                if watch:
                    # Builds the indexer (and loads the model) on this thread; yields sync progress and events.
                    items: Iterable[object] = service.run(cancel=ctx.cancel)
                else:
                    items = library.indexer().sync(paths=scope, cancel=ctx.cancel)
                for item in items:
                    if isinstance(item, Progress) and item.phase in ("scan", "index"):
                        ctx.progress(item)  # thinned: the status bar needs at most 20 a second
                    else:
                        ctx.emit(item)  # events and phase changes always arrive
                ctx.flush()
            finally:
                writer.release()

        self._set_running(True)
        self._live_job = self.runner.submit(
            "live", task, on_progress=self._live_progress, on_failed=self._report,
            on_finished=self._live_finished,
        )

    def _live_progress(self, item: object) -> None:
        from photoembed.core.indexer import Progress

        if isinstance(item, Progress):
            self.index.last = item
            self._set_running(item.phase != "done")
            self.index_progress.emit(item)
            if item.phase == "index":
                self.schedule_refresh()
            elif item.phase == "done":
                self.index_done.emit(item.message)
                self.refresh()
                self.changed.emit()
            return
        kind = getattr(item, "kind", "")
        message = str(getattr(item, "message", ""))
        if kind == "root":
            self.watch_changed.emit(self.watch_states())
        elif kind == "error":
            self.notify.emit(message, True)
        elif kind == "indexed" and getattr(item, "changed", False):
            self.notify.emit(message, False)

    def _live_finished(self, cancelled: bool) -> None:
        self._live_job = None
        self._watch_service = None
        self._set_running(False)
        self.watch_changed.emit({})
        self.refresh()
        self.changed.emit()
        if self.index.paused:
            self.index_state.emit(False, True)
            return
        if not cancelled and not self.watch_enabled and not self.index.queued_paths:
            return  # a one-off sync finished
        self._resume_live_when_idle()

    def _set_running(self, running: bool) -> None:
        if running != self.index.running:
            self.index.running = running
            self.index_state.emit(running, self.index.paused)

    def _preempt_live(self) -> None:
        if self._live_job is not None:
            self._live_job.cancel()
            if self._watch_service is not None:
                self._watch_service.stop()

    def _resume_live_when_idle(self) -> None:
        if (
            self._live_wanted
            and self.library is not None
            and self._live_job is None
            and not any(job.kind != "live" for job in self.runner.active_jobs())
            and (self.watch_enabled or self.index.queued_paths)
        ):
            self._start_live()

    # -- search --------------------------------------------------------------------------------------

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
        library = self.require()
        self.read_pool.clear(tag="search")  # a queued, superseded query is dropped before it runs

        def run(image_provider: Callable[[], Any]) -> SearchResults:
            service = self._search_service(library, image_provider)
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
            self.submit_task(
                "search-photo",
                lambda _ctx: run(lambda: library.encoder(("image",))),
                on_result=on_result,
                on_failed=on_error,
            )

        self.read_pool.submit(on_pool, on_pool_result, on_error, priority=10, tag="search")

    def _search_service(self, library: Library, image_provider: Callable[[], Any]) -> SearchService:
        from photoembed.imaging.decode import decode_photo
        from photoembed.search.service import SearchService

        return SearchService(
            catalog=library.catalog,
            vector_index=library.vector_index,
            encoder_provider=library.text_encoder,
            image_encoder_provider=image_provider,
            decode=decode_photo,
        )

    # -- duplicates ----------------------------------------------------------------------------------

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
        library = self.require()
        if self._cluster_cancel is not None:
            self._cluster_cancel.set()
        self.analysis_pool.clear()
        cancel = threading.Event()
        self._cluster_cancel = cancel

        def run() -> list[Cluster]:
            if not library.catalog.roots():
                return []  # no folder, nothing to compare
            service = self._dedup_service(library)
            generator = service.iter_find_clusters(
                tier=tier, threshold=threshold, time_window=time_window, cancel=cancel
            )
            while True:
                if cancel.is_set():
                    raise Cancelled("superseded")
                try:
                    next(generator)
                except StopIteration as stop:
                    return list(stop.value)

        self.analysis_pool.submit(run, on_result, on_error)

    def plan_trash(self, clusters: Sequence[Cluster], callback: Callable[[TrashPlan], None]) -> None:
        """What moving the clusters' non-kept photos would move, and free (read on the pool)."""
        chosen = list(clusters)
        self.read(lambda library: self._dedup_service(library).plan_trash(chosen), callback)

    def trash(
        self, plan: TrashPlan, *, on_result: Callable[[int], None], on_error: Callable[[TaskError], None],
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        """Move a plan's files to the OS trash on the worker; returns the batch id for undo."""
        library = self.require()

        def task(ctx: TaskContext) -> int:
            return ctx.drive(self._dedup_service(library).iter_execute(plan, cancel=ctx.cancel))

        def done(batch: int) -> None:
            on_result(batch)
            self.refresh()
            self.changed.emit()

        self.submit_task("trash", task, on_progress=on_progress, on_result=done, on_failed=on_error)

    def undo_trash(
        self, batch: int | None, *, on_result: Callable[[list[Path]], None], on_error: Callable[[TaskError], None]
    ) -> None:
        """Restore a removal batch from the trash (default: the last); the catalog follows."""
        library = self.require()

        def task(ctx: TaskContext) -> list[Path]:
            service = self._dedup_service(library, with_indexer=True)
            return ctx.drive(service.iter_undo(batch, cancel=ctx.cancel))

        def done(paths: list[Path]) -> None:
            on_result(paths)
            self.refresh()
            self.changed.emit()

        self.submit_task("undo", task, on_result=done, on_failed=on_error)

    def plan_selection_trash(
        self, paths: Sequence[Path], callback: Callable[[SelectionPlan], None]
    ) -> None:
        """What moving chosen photos to the trash would do, under the duplicates' safety rules (pool).

        Each chosen photo becomes a two-photo cluster with another copy of the same content that stays (and
        that is not chosen too), so the dedup service plans, checks, journals and undoes the move exactly as
        for duplicates. A photo without another copy, or in a protected folder, is refused, never moved.
        """
        chosen = list(paths)
        self.read(lambda library: _plan_selection(self._dedup_service(library), library, chosen), callback)

    def mark_not_duplicates(self, cluster: Cluster, on_result: Callable[[list[tuple[str, str]]], None]) -> None:
        """Remember that the cluster's photos are not duplicates (respected by later runs); ``on_result`` gets
        the new marks, which :meth:`unmark_not_duplicates` takes back."""
        library = self.require()
        paths = [p.path for p in cluster.photos]
        self.submit_task(
            "not-duplicates",
            lambda _ctx: self._dedup_service(library).add_not_duplicate_marks(paths),
            on_result=on_result,
        )

    def unmark_not_duplicates(self, marks: Sequence[tuple[str, str]], on_result: Callable[[int], None]) -> None:
        """Undo :meth:`mark_not_duplicates`: the photos may be proposed as duplicates again."""
        library = self.require()
        chosen = list(marks)
        self.submit_task(
            "not-duplicates-undo",
            lambda _ctx: self._dedup_service(library).remove_not_duplicate_marks(chosen),
            on_result=on_result,
        )

    def _dedup_service(self, library: Library, *, with_indexer: bool = False) -> DedupService:
        """A DedupService for the calling thread (it reads through that thread's catalog connection)."""
        from photoembed.dedup.service import DedupService
        from photoembed.dedup.trash import SystemTrash

        return DedupService(
            catalog=library.catalog,
            settings=library.settings,
            trash=SystemTrash(),
            indexer=library.indexer() if with_indexer else None,
        )

    # -- model ---------------------------------------------------------------------------------------

    def download_model(self, name: str | None = None) -> None:
        """Fetch the model's weights on the worker, with progress and cancel."""
        library = self.require()
        model = name or library.settings.model

        def task(ctx: TaskContext) -> Path:
            return library.models.download(
                model, progress=lambda done, total: ctx.progress((done, total)), cancel=ctx.cancel
            )

        self._download_job = self.submit_task(
            "model-download", task,
            on_progress=lambda p: self.model_download.emit(p[0], p[1]),
            on_result=lambda _p: self._model_ready(f"Model {model} downloaded"),
            on_failed=lambda e: self.model_download_done.emit(False, e.message),
            on_finished=self._download_finished,
        )

    def cancel_download(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()

    def _download_finished(self, cancelled: bool) -> None:
        self._download_job = None
        if cancelled:
            self.model_download_done.emit(False, "Download cancelled")

    def install_model(self, file: Path, name: str | None) -> None:
        """Install weights from a local file (offline machines)."""
        library = self.require()

        def task(_: TaskContext) -> str:
            return library.models.install(file, name=name)

        def done(installed: str) -> None:
            if installed != library.settings.model:
                library.settings = dataclasses.replace(library.settings, model=installed)
                self.save_settings(library.settings)
            self._model_ready(f"Model {installed} installed")

        self.submit_task(
            "model-install", task, on_result=done,
            on_failed=lambda e: self.model_download_done.emit(False, e.message),
        )

    def _model_ready(self, message: str) -> None:
        self.model_download_done.emit(True, message)
        self.refresh()
        self.start_index()  # embed what was catalogued without a model

    # -- settings ------------------------------------------------------------------------------------

    def save_settings(self, settings: Settings) -> None:
        """Validate and write the settings on the worker; a model change re-embeds on the next sync."""
        library = self.require()
        old_model = library.settings.model

        def task(_: TaskContext) -> None:
            settings.validate()
            library.settings = settings
            library.save_settings()

        def done(_: None) -> None:
            self.notify.emit("Settings saved", False)
            self.refresh()
            if settings.model != old_model:
                self.start_index()

        self.submit_task("settings", task, on_result=done, on_failed=self._report)

    # -- helpers -------------------------------------------------------------------------------------

    def _report(self, error: TaskError) -> None:
        self.notify.emit(error.message, True)


_NEEDS_IMAGE_MODEL = "This query photo needs the image model"

_WATCH_LABELS = {
    "native": "watching",
    "polling": "polling",
    "offline": "offline",
    "error": "not watched",
    "starting": "starting",
}


class NeedsImageModel(Exception):
    """The query needs the image model, which only the library worker runs.

    Deliberately not a :class:`KnownError`: services re-wrap a KnownError into a message for the user, and
    this one must reach :meth:`LibraryController.search` by its type, untouched.
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
class _LiveNote:
    """A message of the live job for the status area (``kind`` as the watch service's events use it)."""

    kind: str
    message: str


@dataclass(frozen=True)
class SelectionPlan:
    """A trash plan for chosen photos, and the chosen photos it refuses (with the reason, in words)."""

    plan: TrashPlan
    refused: list[tuple[Path, str]]


def _plan_selection(service: DedupService, library: Library, paths: Sequence[Path]) -> SelectionPlan:
    """Pool thread: see :meth:`LibraryController.plan_selection_trash`."""
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


def take_snapshot(library: Library) -> LibrarySnapshot:
    """Pool thread: counts per folder, totals and the model state."""
    catalog = library.catalog
    model_name = library.settings.model
    available = library.model_available()
    counts = catalog.counts(library.settings.embedding_model if available else None)
    per_root = catalog.root_counts()
    rows = []
    for root in catalog.roots():
        readable, failed = per_root.get(root.id, (0, 0))
        rows.append(RootRow(root.id, root.path, root.protected, photos=readable, failed=failed))
    if available:
        message = f"Model {model_name}"
    else:
        message = f"No model weights for {model_name}: search is off, duplicates work"
    return LibrarySnapshot(
        roots=rows,
        photos=counts["photos"],
        ok=counts["ok"],
        failed=counts["failed"],
        embedded=counts["embedded"],
        pending=counts["pending"] if available else 0,
        model=ModelState(model_name, available, message),
        generation=catalog.generation,
    )




def library_date_range(library: Library) -> tuple[float, float] | None:
    """Pool thread: the earliest and latest capture time of the readable photos, or None when none has one."""
    return library.catalog.taken_range()
