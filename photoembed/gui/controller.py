"""The GUI's library and status part, and the composition root of the controller's other parts.

:class:`LibraryController` opens the :class:`~photoembed.library.Library`, reads snapshots of its counts,
adds and removes folders, runs the live job (the sync, or watching) and saves settings; it keeps the one
:class:`~photoembed.gui.status_model.StatusModel` that the status bar, the sidebar and the banners render.
It builds the other parts over the same :class:`~photoembed.gui.tasks.TaskScheduler`:

* ``browse`` (:mod:`photoembed.gui.browse_part`): listings, search, a selection's trash plan;
* ``dupes`` (:mod:`photoembed.gui.dupes_part`): clusters, trash and undo, "not duplicates" marks;
* ``model`` (:mod:`photoembed.gui.model_part`): model download and install.

Each view talks to its own part. Views never touch the catalog, the model or the disk; a part snapshots
what a request needs on the GUI thread, runs the work on the scheduler's worker or pools, and applies the
result on the GUI thread. Services (search, dedup, watch) come from the Library.

Threads (all owned by the scheduler):
    * the **library worker** (one, long-lived): opening, the live job, folder changes, trash and undo,
      model download and install, settings: everything that writes;
    * the **read pool**: snapshots and search queries; the **analysis pool**: duplicate clustering;
    * the **thumbnail pool**: thumbnails. The read pool also prunes the thumbnails' disk cache of what no
      photo uses (:class:`~photoembed.gui.thumbnails.ThumbnailPruner`, soon after opening, then every few
      hours, a bounded step at a time at the lowest priority).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from photoembed.config import Paths, Settings
from photoembed.errors import KnownError
from photoembed.gui.browse_part import BrowsePart
from photoembed.gui.dupes_part import DuplicatesPart
from photoembed.gui.model_part import ModelPart
from photoembed.gui.models import RootRow
from photoembed.gui.status_model import StatusModel
from photoembed.gui.tasks import TaskScheduler
from photoembed.gui.thumbnails import DiskThumbnailCache, Loader, ThumbnailProvider, ThumbnailPruner, load_qimage
from photoembed.gui.workers import BackgroundPool, TaskContext, TaskError
from photoembed.imaging.fingerprint import FORMAT_VERSION as FINGERPRINT_VERSION

if TYPE_CHECKING:
    from photoembed.core.indexer import Progress
    from photoembed.library import Library
    from photoembed.watch.service import WatchService

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_MS = 3000  # how often counts refresh while indexing
RETRY_BASE_S = 2.0  # a failed live job is retried after 2, 4, 8, ... seconds
RETRY_MAX_S = 300.0  # and at least every 5 minutes


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
    stale_fingerprints: int = 0


@dataclass
class IndexState:
    """Where the live job stands (GUI thread only).

    Attributes:
        running: a sync step runs (scan, index, finish), as opposed to idle watching.
        paused: the user paused indexing and watching.
        last: the last progress record.
        queued_paths: folders to sync when the live job next starts; ``queued_all``: all of them.
        failures: live jobs failed in a row (the retry delay doubles with each).
    """

    running: bool = False
    paused: bool = False
    last: Progress | None = None
    queued_paths: set[Path] = field(default_factory=set)
    queued_all: bool = False
    failures: int = 0


class LibraryController(QObject):
    """Owns the Library, the scheduler and the parts. Create and use on the GUI thread.

    Args:
        paths: where the library lives.
        force_sync: run every task inline (tests of a single view).
        thumbnail_loader: decodes one thumbnail on a pool thread (tests and benchmarks inject their own).
        watch: keep watching the folders after the first sync (off in tests: a watch loop never ends).
        retry_base_s, retry_max_s: a live job that fails is retried after ``retry_base_s`` seconds, doubling
            with each failure in a row up to ``retry_max_s``.

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

    def __init__(
        self,
        paths: Paths,
        *,
        force_sync: bool = False,
        thumbnail_loader: Loader = load_qimage,
        watch: bool = True,
        retry_base_s: float = RETRY_BASE_S,
        retry_max_s: float = RETRY_MAX_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.library: Library | None = None
        self.tasks = TaskScheduler(self, force_sync=force_sync)
        self.tasks.idle.connect(self._resume_live_when_idle)
        self.status = StatusModel(self)
        disk = DiskThumbnailCache(paths.thumbnails)
        self.thumbnails = ThumbnailProvider(self.tasks.thumb_pool, loader=thumbnail_loader, disk=disk, parent=self)
        self.pruner = ThumbnailPruner(disk, self.tasks.read_pool, sizes=lambda: self.thumbnails.disk_sizes,
                                      parent=self)
        self.index = IndexState()
        self.watch_enabled = watch and not force_sync  # a watch loop never ends: tests sync once instead
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._live_wanted = False
        self._watch_service: WatchService | None = None
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._resume_live_when_idle)
        self._snapshot_timer = QTimer(self)
        self._snapshot_timer.setSingleShot(True)
        self._snapshot_timer.setInterval(SNAPSHOT_INTERVAL_MS)
        self._snapshot_timer.timeout.connect(self.refresh)
        self._snapshot_running = False
        self._snapshot_again = False
        self.last_snapshot: LibrarySnapshot | None = None
        self.browse = BrowsePart(self)
        self.dupes = DuplicatesPart(self)
        self.model = ModelPart(self)

    @property
    def thumb_pool(self) -> BackgroundPool:
        return self.tasks.thumb_pool

    # -- lifecycle -----------------------------------------------------------------------------------

    def open(self, *, then_add: Sequence[Path] = ()) -> None:
        """Open the library on the worker (SQLite migrations can take a moment), then index it."""

        def task(_: TaskContext) -> Library:
            from photoembed.library import Library

            return Library(self.paths)

        def opened(library: Library) -> None:
            from photoembed.storage.browse import photo_stamps

            self.library = library
            self.pruner.start(lambda: photo_stamps(library.catalog))
            self.status.opened()
            self.opened.emit()
            self.refresh()
            self._live_wanted = True
            if then_add:
                self.add_roots(then_add)
            else:
                self.start_index()

        def failed(error: TaskError) -> None:
            self.status.open_failed(error.message)
            self.open_failed.emit(error.message)

        self.tasks.submit("open", task, on_result=opened, on_failed=failed)

    def shutdown(self) -> None:
        """Stop every job (the batch in flight finishes), then close the library. GUI thread only."""
        self._snapshot_timer.stop()
        self._retry_timer.stop()
        self._live_wanted = False
        self.pruner.stop()
        self.thumbnails.forget_pending()
        self.dupes.cancel_clustering()
        self.tasks.shutdown()
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
        self.tasks.read(lambda: take_snapshot(library), self._apply_snapshot, self._snapshot_failed, priority=1)

    def _apply_snapshot(self, snap: LibrarySnapshot) -> None:
        self._snapshot_running = False
        self.last_snapshot = snap
        self.status.snapshot(roots=tuple(snap.roots), photos=snap.ok, failed=snap.failed, embedded=snap.embedded,
                             pending=snap.pending, model_name=snap.model.name, model_missing=not snap.model.available,
                             stale_fingerprints=snap.stale_fingerprints)
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

    def library_changed(self) -> None:
        """Photos were moved, restored or forgotten: counts, listings and clusters follow."""
        self.refresh()
        self.changed.emit()

    def load_failures(self, callback: Callable[[list[tuple[str, str]]], None]) -> None:
        """The photos that could not be read, with reasons (read on the pool)."""
        self.read(lambda library: [(str(f.path), f.reason) for f in library.catalog.failures()], callback)

    def read(self, fn: Callable[[Library], Any], callback: Callable[[Any], None],
             on_error: Callable[[TaskError], None] | None = None) -> int:
        """Run a read-only ``fn(library)`` on the read pool; ``callback`` gets its value on the GUI thread."""
        library = self.require()
        return self.tasks.read(lambda: fn(library), callback, on_error or self.report)

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

        self.tasks.submit("add-root", task, on_result=done, on_failed=self.report)

    def remove_root(self, folder: Path) -> None:
        """Forget a folder's photos (files are never touched)."""

        def task(_: TaskContext) -> int:
            return self.require().catalog.remove_root(folder)

        def done(forgotten: int) -> None:
            self.notify.emit(f"Removed {folder.name}: {forgotten:,} photos forgotten, no file touched", False)
            self.refresh()
            self._refresh_vectors()

        self.tasks.submit("remove-root", task, on_result=done, on_failed=self.report)

    def set_protected(self, folder: Path, protected: bool) -> None:
        def task(_: TaskContext) -> None:
            self.require().catalog.set_root_protected(folder, protected)

        def done(_: None) -> None:
            word = "protected: never proposed for removal" if protected else "no longer protected"
            self.notify.emit(f"{folder.name} is {word}", False)
            self.library_changed()

        self.tasks.submit("protect", task, on_result=done, on_failed=self.report)

    def _refresh_vectors(self) -> None:
        def task(_: TaskContext) -> None:
            library = self.require()
            if library.model_available():
                library.vector_index.refresh(library.settings.embedding_model)

        self.tasks.submit("refresh-index", task, on_finished=lambda _c: self.changed.emit(), on_failed=self.report)

    # -- indexing and watching: the live job -----------------------------------------------------------

    @property
    def watching(self) -> bool:
        """Whether the folders are being watched right now."""
        return self.tasks.live_running and self.watch_enabled

    @property
    def retry_pending(self) -> bool:
        """Whether a failed live job waits for its retry delay."""
        return self._retry_timer.isActive()

    def start_index(self, *, paths: Sequence[Path] | None = None) -> None:
        """Bring the index up to date (all folders, or ``paths``), and keep watching if enabled.

        Asked for by the user (or by a folder added, a model installed): a retry delay ends at once.
        """
        if self.library is None:
            return
        self._live_wanted = True
        self.index.paused = False
        self._retry_timer.stop()
        if self.tasks.live_running:
            if self._watch_service is not None:
                self._watch_service.reconcile(paths)  # the running watcher syncs them at its next step
            else:
                self._queue(paths)
            return
        self._queue(paths)
        if not self.tasks.foreground_busy():
            self._start_live()

    def _queue(self, paths: Sequence[Path] | None) -> None:
        if paths is None:
            self.index.queued_all = True
        else:
            self.index.queued_paths.update(paths)

    def pause_index(self) -> None:
        """Stop indexing and watching at the next photo; what is committed is kept, resuming picks it up."""
        self._live_wanted = False
        self.index.paused = True
        self._retry_timer.stop()
        if self.tasks.live_running:
            self.tasks.stop_live()
        else:
            self.status.paused()
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
        scope = None if self.index.queued_all or not self.index.queued_paths else sorted(self.index.queued_paths)
        self.index.queued_paths = set()
        self.index.queued_all = False
        library = self.require()
        watch = self.watch_enabled
        service: WatchService | None = None
        if watch:
            from photoembed.watch.service import WatchService

            service = WatchService.for_library(library)
        self._watch_service = service

        def task(ctx: TaskContext) -> None:
            from photoembed.core.indexer import Progress
            from photoembed.core.writer_lock import WriterBusyError, WriterLock

            # One writer per library: a `photoembed index` or `watch` beside the app makes it wait (said in
            # the status), never embed the same photos twice.
            writer = WriterLock(library.paths.data, command="photoembed (the app)")
            holder = writer.holder()
            if holder is not None:
                ctx.emit(_WriterBusy(f"The library is being written by {holder.describe()}: indexing here "
                                     "starts when it ends"))
            try:
                writer.acquire(wait_s=float("inf"), poll_s=0.5, cancel=ctx.cancel)
            except WriterBusyError:
                if ctx.cancel.is_set():
                    return  # stopped while waiting (pre-empted, paused or quitting)
                raise
            try:
                if service is not None:
                    # Builds the indexer on this thread (the model loads on the first photo that needs it).
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

        def failed(error: TaskError) -> None:
            self._live_failed(error, scope)

        self._set_running(True)
        self.status.live_started()
        self.status.watching(watch)
        self.tasks.start_live(task, stop=service.stop if service is not None else None,
                              on_progress=self._live_progress, on_failed=failed, on_finished=self._live_finished)

    def _live_progress(self, item: object) -> None:
        from photoembed.core.indexer import Progress

        if isinstance(item, Progress):
            self.index.last = item
            self.status.progress(item)
            self._set_running(item.phase != "done")
            self.index_progress.emit(item)
            if item.phase == "index":
                self.schedule_refresh()
            elif item.phase == "done":
                self.index.failures = 0  # a sync that ends well ends a run of failures
                self.index_done.emit(item.message)
                self.library_changed()
            return
        if isinstance(item, _WriterBusy):
            self.status.waiting_for_writer(item.message)
            return
        kind = getattr(item, "kind", "")
        message = str(getattr(item, "message", ""))
        if kind == "root":
            states = self.watch_states()
            self.status.watch_states(states)
            self.watch_changed.emit(states)
        elif kind == "error":
            self.notify.emit(message, True)
        elif kind == "indexed" and getattr(item, "changed", False):
            self.notify.emit(message, False)

    def _live_failed(self, error: TaskError, scope: Sequence[Path] | None) -> None:
        """The live job raised: try again later, each failure in a row doubling the wait (never a loop of
        full rescans that fail the same way at once)."""
        self.index.failures += 1
        delay = min(self.retry_base_s * 2 ** (self.index.failures - 1), self.retry_max_s)
        self._queue(scope)  # the same folders again
        logger.info("The live job failed (%d in a row); retrying in %.1f s", self.index.failures, delay)
        self.status.live_failed(error.message, attempt=self.index.failures, retry_in_s=delay)
        self._retry_timer.start(max(1, round(delay * 1000)))

    def _live_finished(self, cancelled: bool) -> None:
        self._watch_service = None
        self._set_running(False)
        self.watch_changed.emit({})
        self.status.watch_states({})
        self.library_changed()
        if self.index.paused:
            self.status.paused()
            self.index_state.emit(False, True)
            return
        if self.retry_pending:
            return  # failed: the retry timer restarts it
        waiting_for = self.tasks.foreground_kinds()
        self.status.live_stopped(held_for=_TASK_WORDS.get(waiting_for[0], "another task") if waiting_for else "")
        if not cancelled and not self.watch_enabled and not self._queued():
            return  # a one-off sync finished
        self._resume_live_when_idle()

    def _queued(self) -> bool:
        return self.index.queued_all or bool(self.index.queued_paths)

    def _set_running(self, running: bool) -> None:
        if running != self.index.running:
            self.index.running = running
            self.index_state.emit(running, self.index.paused)

    def _resume_live_when_idle(self) -> None:
        if (
            self._live_wanted
            and self.library is not None
            and not self.tasks.live_running
            and not self.retry_pending
            and not self.tasks.foreground_busy()
            and (self.watch_enabled or self._queued())
        ):
            self._start_live()

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

        self.tasks.submit("settings", task, on_result=done, on_failed=self.report)

    # -- helpers -------------------------------------------------------------------------------------

    def report(self, error: TaskError) -> None:
        """The notification sink for a task's failure: one line in the status bar."""
        self.notify.emit(error.message, True)


_WATCH_LABELS = {
    "native": "watching",
    "polling": "polling",
    "offline": "offline",
    "error": "not watched",
    "starting": "starting",
}


#: What a foreground task is, for "Indexing 5 / 100 · waits for the model download".
_TASK_WORDS = {
    "open": "the library to open",
    "add-root": "the new folder",
    "remove-root": "the folder's removal",
    "protect": "the folder's protection",
    "refresh-index": "the search index",
    "trash": "the move to the trash",
    "undo": "the undo",
    "not-duplicates": "the duplicates' marks",
    "not-duplicates-undo": "the duplicates' marks",
    "model-download": "the model download",
    "model-install": "the model install",
    "search-photo": "a photo query",
    "settings": "the settings",
}


@dataclass(frozen=True)
class _WriterBusy:
    """The live job waits for another process that holds the library's writer lock."""

    message: str


def take_snapshot(library: Library) -> LibrarySnapshot:
    """Pool thread: counts per folder, totals and the model state."""
    catalog = library.catalog
    model_name = library.settings.model
    available = library.model_available()
    embedding_model = library.settings.embedding_model if available else None
    counts = catalog.counts(embedding_model)
    per_root = catalog.root_counts()
    pending = catalog.root_pending(embedding_model) if embedding_model is not None else {}
    rows = []
    for root in catalog.roots():
        readable, failed = per_root.get(root.id, (0, 0))
        rows.append(RootRow(root.id, root.path, root.protected, photos=readable, failed=failed,
                            pending=pending.get(root.id, 0)))
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
        stale_fingerprints=catalog.stale_fingerprint_count(FINGERPRINT_VERSION),
    )
