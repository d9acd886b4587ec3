"""Where the app's work runs: one long-lived worker thread, and a small pool for quick reads.

* :class:`TaskRunner` owns the **library worker**: one :class:`LibraryWorker` ``QObject`` moved to a
  ``QThread`` for the app's whole life. It runs tasks one at a time, in submission order: index syncs,
  the watcher's updates, duplicate clustering, trash and undo, model downloads. It is the only thread that
  uses the image model and writes the catalog or the index, so none of that needs a lock.
* :class:`BackgroundPool` runs short read-only jobs (search queries, thumbnails, counts) on a
  ``QThreadPool``, so that searching stays responsive while the worker indexes (SQLite runs in WAL mode:
  readers never wait for the writer; the text encoder is its own text-only instance).

Both talk to the GUI only through queued signals and hand results to per-job callbacks on the GUI thread.
A task receives a :class:`TaskContext` with its ``threading.Event`` for cancellation and a throttled progress
sink; a generator-based core job is run with :meth:`TaskContext.drive`.

Tests pass ``force_sync=True``: tasks then run inline on the calling thread, with the same signals and
callbacks, so a test needs no event-loop waits for the worker's part.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from photoembed.errors import Cancelled, KnownError

logger = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress updates a second reach the GUI thread


@dataclass(frozen=True)
class TaskError:
    """Why a task failed, as the GUI shows it.

    Attributes:
        message: one sentence for the user (a KnownError's message as-is).
        known: True for an environment problem the user can act on, False for a bug.
        detail: the traceback of a bug, for the log and the details pane.
    """

    message: str
    known: bool
    detail: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskError:
        if isinstance(exc, KnownError):
            return cls(str(exc), True)
        detail = "".join(traceback.format_exception(exc))
        return cls(f"Internal error: {type(exc).__name__}: {exc}", False, detail)


class TaskContext:
    """What a running task sees: its cancel event and a throttled progress sink. Worker thread only.

    Args:
        cancel: set from any thread to ask the task to stop at its next check.
        report: delivers one progress record towards the GUI thread.
        min_interval_s: progress records closer together than this are coalesced (the latest wins).
    """

    def __init__(
        self,
        cancel: threading.Event,
        report: Callable[[object], None],
        *,
        min_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.cancel = cancel
        self._report = report
        self._interval = min_interval_s
        self._last = 0.0
        self._held: object | None = None
        self._has_held = False

    def progress(self, item: object) -> None:
        """Report progress; bursts are thinned so the GUI thread is never flooded."""
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._has_held = False
            self._held = None
            self._report(item)
        else:
            self._held = item
            self._has_held = True

    def emit(self, item: object) -> None:
        """Report a record that must not be thinned out (an event, a final state), after any held one."""
        self.flush()
        self._last = time.monotonic()
        self._report(item)

    def flush(self) -> None:
        """Deliver the last held-back progress record, if any."""
        if self._has_held:
            self._has_held = False
            item, self._held = self._held, None
            self._report(item)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the task was asked to stop."""
        if self.cancel.is_set():
            raise Cancelled("cancelled")

    def drive(self, generator: Generator[Any, Any, R]) -> R:
        """Run a core generator to its end, reporting each yielded record; returns its return value."""
        while True:
            self.check()
            try:
                item = next(generator)
            except StopIteration as stop:
                self.flush()
                return stop.value
            self.progress(item)


TaskFn = Callable[[TaskContext], object]


@dataclass(eq=False)
class Job:
    """A submitted task. ``cancel()`` is safe from any thread, before or while it runs."""

    id: int
    kind: str
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


@dataclass(frozen=True)
class _Request:
    job: Job
    fn: TaskFn


@dataclass
class _Callbacks:
    on_progress: Callable[[Any], None] | None = None
    on_result: Callable[[Any], None] | None = None
    on_failed: Callable[[TaskError], None] | None = None
    on_finished: Callable[[bool], None] | None = None


class LibraryWorker(QObject):
    """Runs tasks one at a time on the thread it lives on.

    Signals:
        started(job_id): a task began running.
        progress(job_id, record): a progress record (thinned to ``PROGRESS_INTERVAL_S``).
        result(job_id, value): the task's return value.
        failed(job_id, error: TaskError): the task raised (not emitted when it was cancelled).
        finished(job_id, cancelled: bool): always last, once per task.
    """

    started = Signal(int)
    progress = Signal(int, object)
    result = Signal(int, object)
    failed = Signal(int, object)
    finished = Signal(int, bool)

    @Slot(object)
    def run_request(self, request: _Request) -> None:
        """Worker thread: run one task and report through the signals."""
        job = request.job
        if job.cancelled:
            self.finished.emit(job.id, True)
            return
        self.started.emit(job.id)
        context = TaskContext(job.cancel_event, lambda item: self.progress.emit(job.id, item))
        cancelled = False
        try:
            value = request.fn(context)
        except Cancelled:
            cancelled = True
        except KnownError as exc:
            logger.info("%s task failed: %s", job.kind, exc)
            self.failed.emit(job.id, TaskError.from_exception(exc))
        except Exception as exc:  # the worker must survive any task's bug and report it
            logger.exception("%s task failed", job.kind)
            self.failed.emit(job.id, TaskError.from_exception(exc))
        else:
            context.flush()
            self.result.emit(job.id, value)
        self.finished.emit(job.id, cancelled or job.cancelled)


class TaskRunner(QObject):
    """GUI-side handle on the library worker thread. Create, use and shut down on the GUI thread.

    Args:
        force_sync: run tasks inline on the calling thread (tests), with the same signals and callbacks.

    Signals:
        busy_changed(busy: bool): whether any task is queued or running.
    """

    busy_changed = Signal(bool)
    _request = Signal(object)

    def __init__(self, parent: QObject | None = None, *, force_sync: bool = False) -> None:
        super().__init__(parent)
        self.force_sync = force_sync
        self._ids = itertools.count(1)
        self._callbacks: dict[int, _Callbacks] = {}
        self._jobs: dict[int, Job] = {}
        self._worker = LibraryWorker()
        self._thread: QThread | None = None
        if not force_sync:
            self._thread = QThread()
            self._thread.setObjectName("photoembed-library-worker")
            self._worker.moveToThread(self._thread)
            self._thread.finished.connect(self._worker.deleteLater)
            self._thread.start()
        # Connected after moveToThread: the worker's signals reach this GUI-thread object queued.
        self._request.connect(self._worker.run_request)
        self._worker.progress.connect(self._on_progress)
        self._worker.result.connect(self._on_result)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_finished)

    @property
    def worker(self) -> LibraryWorker:
        return self._worker

    def submit(
        self,
        kind: str,
        fn: TaskFn,
        *,
        on_progress: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_failed: Callable[[TaskError], None] | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> Job:
        """Queue ``fn`` on the worker thread; callbacks run on the GUI thread. GUI thread only."""
        job = Job(next(self._ids), kind)
        self._callbacks[job.id] = _Callbacks(on_progress, on_result, on_failed, on_finished)
        self._jobs[job.id] = job
        if len(self._jobs) == 1:
            self.busy_changed.emit(True)
        self._request.emit(_Request(job, fn))
        return job

    def active_jobs(self, kind: str | None = None) -> list[Job]:
        """Queued or running jobs, optionally of one kind."""
        return [job for job in self._jobs.values() if kind is None or job.kind == kind]

    def cancel_all(self, kind: str | None = None) -> None:
        for job in self.active_jobs(kind):
            job.cancel()

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Cancel everything and stop the thread (waits for the batch in flight). GUI thread only."""
        self.cancel_all()
        if self._thread is not None:
            self._thread.quit()
            if not self._thread.wait(timeout_ms):
                logger.warning("The library worker did not stop within %d ms", timeout_ms)
            self._thread = None
        self._callbacks.clear()
        self._jobs.clear()

    @Slot(int, object)
    def _on_progress(self, job_id: int, item: object) -> None:
        callbacks = self._callbacks.get(job_id)
        if callbacks and callbacks.on_progress:
            callbacks.on_progress(item)

    @Slot(int, object)
    def _on_result(self, job_id: int, value: object) -> None:
        callbacks = self._callbacks.get(job_id)
        if callbacks and callbacks.on_result:
            callbacks.on_result(value)

    @Slot(int, object)
    def _on_failed(self, job_id: int, error: TaskError) -> None:
        callbacks = self._callbacks.get(job_id)
        if callbacks and callbacks.on_failed:
            callbacks.on_failed(error)

    @Slot(int, bool)
    def _on_finished(self, job_id: int, cancelled: bool) -> None:
        callbacks = self._callbacks.pop(job_id, None)
        self._jobs.pop(job_id, None)
        if callbacks and callbacks.on_finished:
            callbacks.on_finished(cancelled)
        if not self._jobs:
            self.busy_changed.emit(False)


class _Relay(QObject):
    """Lives on the GUI thread; pool threads emit through it, so delivery is queued to the GUI thread."""

    done = Signal(int, object)
    error = Signal(int, object)
    cancelled = Signal(int)


class _Runnable(QRunnable):
    def __init__(self, job_id: int, fn: Callable[[], object], relay: _Relay) -> None:
        super().__init__()
        self._job_id = job_id
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            value = self._fn()
        except Cancelled:
            self._relay.cancelled.emit(self._job_id)  # superseded: nobody wants the answer
        except KnownError as exc:
            self._relay.error.emit(self._job_id, TaskError.from_exception(exc))
        except Exception as exc:  # a pool thread must report, not die silently
            logger.exception("Background job failed")
            self._relay.error.emit(self._job_id, TaskError.from_exception(exc))
        else:
            self._relay.done.emit(self._job_id, value)


class BackgroundPool(QObject):
    """Short, read-only jobs (search queries, thumbnails, counts) on a small ``QThreadPool``.

    Args:
        threads: pool size; keep it small (the machine's cores are shared with the model).
        name: for the log.
        force_sync: run jobs inline (tests).
    """

    def __init__(
        self, parent: QObject | None = None, *, threads: int = 1, name: str = "pool", force_sync: bool = False
    ) -> None:
        super().__init__(parent)
        self.force_sync = force_sync
        self.name = name
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, threads))
        self._pool.setExpiryTimeout(30000)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.error.connect(self._on_error)
        self._relay.cancelled.connect(self._forget)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Callable[[Any], None], Callable[[TaskError], None] | None]] = {}
        self._runnables: dict[int, _Runnable] = {}
        self._tags: dict[int, str] = {}

    def submit(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[TaskError], None] | None = None,
        *,
        priority: int = 0,
        tag: str = "",
    ) -> int:
        """Run ``fn`` on a pool thread; ``on_done``/``on_error`` run on the GUI thread. Returns a job id.

        Jobs with a higher ``priority`` start first; ``tag`` names a group that :meth:`clear` can drop.
        """
        job_id = next(self._ids)
        self._pending[job_id] = (on_done, on_error)
        runnable = _Runnable(job_id, fn, self._relay)
        if self.force_sync:
            runnable.run()
            return job_id
        runnable.setAutoDelete(False)  # kept until done, so that clear() can take it back from the queue
        self._runnables[job_id] = runnable
        self._tags[job_id] = tag
        self._pool.start(runnable, priority)
        return job_id

    def clear(self, tag: str | None = None) -> None:
        """Drop queued jobs (of one tag) that have not started; their callbacks never run. GUI thread only."""
        for job_id, runnable in list(self._runnables.items()):
            if tag is not None and self._tags.get(job_id) != tag:
                continue
            if self._pool.tryTake(runnable):
                self._forget(job_id)

    @Slot(int)
    def _forget(self, job_id: int) -> None:
        self._runnables.pop(job_id, None)
        self._pending.pop(job_id, None)
        self._tags.pop(job_id, None)

    def pending_count(self) -> int:
        return len(self._pending)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.clear()
        self._pool.waitForDone(timeout_ms)
        self._pending.clear()
        self._runnables.clear()
        self._tags.clear()

    @Slot(int, object)
    def _on_done(self, job_id: int, value: object) -> None:
        callbacks = self._pending.get(job_id)
        self._forget(job_id)
        if callbacks is not None:
            callbacks[0](value)

    @Slot(int, object)
    def _on_error(self, job_id: int, error: TaskError) -> None:
        callbacks = self._pending.get(job_id)
        self._forget(job_id)
        if callbacks is None:
            return
        if callbacks[1] is not None:
            callbacks[1](error)
        else:
            logger.warning("%s job failed: %s", self.name, error.message)
